/**
 * Browser commands for the component runtime tests (they run in the Vitest process): hand the built `notes`
 * component's files to the browser, and run the notes workload in Node, optionally from an image the browser took.
 * Heavy modules load on first use, so the Vitest config stays quick to load.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BrowserCommand } from 'vitest/node';
import type { StateImageJson } from './state-image-json.ts';

export interface ComponentFilesJson {
  id: string;
  /** File name → base64 bytes: manifest.json, the glue and every core module. */
  files: Record<string, string>;
}

export interface NodeRun {
  pid: number;
  results: string[];
  image: StateImageJson;
}

const notesComponentFiles: BrowserCommand<[], ComponentFilesJson> = async () => {
  const [{ builtNotes }, { componentId }, { parseManifest, MANIFEST_FILE }, { toBase64 }] = await Promise.all([
    import('./components.ts'),
    import('../../server/runtime/node-components.ts'),
    import('../../src/core/runtime/index.ts'),
    import('./state-image-json.ts'),
  ]);
  const dir = await builtNotes();
  const manifest = parseManifest(await readFile(path.join(dir, MANIFEST_FILE)));
  const names = [MANIFEST_FILE, manifest.glue.file, ...manifest.coreModules.map((m) => m.file)];
  const files = Object.fromEntries(await Promise.all(names.map(async (f) => [f, toBase64(await readFile(path.join(dir, f)))] as const)));
  return { id: await componentId(dir), files };
};

/** Runs notes calls [from, to) in Node — in a fresh instance, or restored from `image` — and captures the result. */
const notesRunInNode: BrowserCommand<[from: number, to: number, image?: StateImageJson], NodeRun> = async (_ctx, from, to, image) => {
  const [{ builtNotes }, { loadBuiltComponent }, { instantiate }, workload, json] = await Promise.all([
    import('./components.ts'),
    import('../../server/runtime/node-components.ts'),
    import('../../src/core/runtime/index.ts'),
    import('./notes-workload.ts'),
    import('./state-image-json.ts'),
  ]);
  const instance = await instantiate(await loadBuiltComponent(await builtNotes()), {});
  if (image) instance.restore(json.imageFromJson(image));
  const results = workload.runCalls(workload.invokeOf(instance.exports), workload.notesCalls(from, to));
  return { pid: process.pid, results, image: json.imageToJson(instance.capture()) };
};

export const runtimeCommands = { notesComponentFiles, notesRunInNode };

declare module 'vitest/browser' {
  interface BrowserCommands {
    notesComponentFiles: () => Promise<ComponentFilesJson>;
    notesRunInNode: (from: number, to: number, image?: StateImageJson) => Promise<NodeRun>;
  }
}
