/**
 * Node side of the component host: the wasm feature QuickJS components need, and reading a built component from
 * its folder. Used by the relay's cloud worker, the tests and the benchmarks.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import { loadComponent, MANIFEST_FILE, type ComponentSource, type LoadedComponent } from '../../src/core/runtime/index.ts';
import { objectId } from '../../src/core/store/index.ts';

/**
 * QuickJS components use the wasm extended-const feature, which Node 20 ships behind a flag (Node ≥ 22 and
 * Chromium have it on). Setting the V8 flag at run time works as long as it happens before the first compile.
 */
export function enableComponentWasmFeatures(): void {
  if (Number(process.versions.node.split('.')[0]) < 22) v8.setFlagsFromString('--experimental-wasm-extended-const');
}

export function folderSource(dir: string): ComponentSource {
  return { read: async (file) => new Uint8Array(await readFile(path.join(dir, path.basename(file)))) };
}

/** The id of the component built into `dir` (the SHA-256 of its manifest). */
export async function componentId(dir: string): Promise<string> {
  return objectId(new Uint8Array(await readFile(path.join(dir, MANIFEST_FILE))));
}

/** Loads the component built into `dir`, trusting the manifest found there (for components this checkout built). */
export async function loadBuiltComponent(dir: string): Promise<LoadedComponent> {
  enableComponentWasmFeatures();
  return loadComponent(await componentId(dir), folderSource(dir));
}
