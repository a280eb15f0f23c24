/**
 * Build-time pass: export every mutable global a core module defines but does not export. Between two calls a
 * component's state is its memories and mutable globals (DESIGN.md §4); the host can only read and write what an
 * instance exports, so a hidden global (e.g. the WASI adapter's `internal_state_ptr` or a module's own
 * `__stack_pointer`) would be silently lost by a checkpoint. Modules with nothing to add keep their exact bytes.
 */
import type binaryenModule from 'binaryen';

type Binaryen = typeof binaryenModule;

/** Prefix of the export names this pass adds; the host treats them like any other exported global. */
export const STATE_GLOBAL_PREFIX = 'ferry-state-global-';

export interface ExportResult {
  bytes: Uint8Array;
  /** Names of the exports added (empty when the module was already fully visible). */
  added: string[];
}

/** binaryen.js is a 10 MB module that takes seconds to load: load it once, only when a build needs it. */
export async function loadBinaryen(): Promise<Binaryen> {
  return (await import('binaryen')).default;
}

export function exportMutableGlobals(binaryen: Binaryen, bytes: Uint8Array): ExportResult {
  const module = binaryen.readBinary(bytes);
  try {
    const exported = new Set<string>();
    for (let i = 0; i < module.getNumExports(); i++) {
      const info = binaryen.getExportInfo(module.getExportByIndex(i));
      if (info.kind === binaryen.ExternalGlobal) exported.add(info.value);
    }
    const added: string[] = [];
    for (let i = 0; i < module.getNumGlobals(); i++) {
      const info = binaryen.getGlobalInfo(module.getGlobalByIndex(i));
      // Imported globals belong to the instance that exports them (or to the glue), which is captured there.
      if (!info.mutable || info.module || exported.has(info.name)) continue;
      const name = `${STATE_GLOBAL_PREFIX}${i}`;
      module.addGlobalExport(info.name, name);
      added.push(name);
    }
    if (added.length === 0) return { bytes, added };
    // Keep whatever features the module was read with; emitting must not drop any.
    module.setFeatures(module.getFeatures() | binaryen.Features.MutableGlobals);
    return { bytes: module.emitBinary(), added };
  } finally {
    module.dispose();
  }
}
