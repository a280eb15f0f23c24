/**
 * Components run with WASI stubbed (components/README.md): reading the clock traps and kills the instance. Some
 * libraries read `Date.now()` only to enforce optional timeouts (jsdiff does), so a component that bundles one
 * imports this first. A constant clock also keeps the component deterministic, which replay and checkpoints want.
 */
Date.now = () => 0;
