/** A tool component in its own Web Worker (src/core/runtime/tool-worker.ts): terminated when a call runs past its time limit. */
import { expose } from 'comlink';
import { toolWorkerApi } from '../src/core/runtime/tool-worker.ts';

expose(toolWorkerApi());
