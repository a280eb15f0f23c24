/**
 * Node side of isolated tools: each tool runs in its own worker thread (server/runtime/tool-worker.ts) under its
 * declared limits — a call past its time is stopped by terminating the thread — so a runaway tool never blocks the
 * relay's or a `ferry worker`'s main thread. The thread gets the component's verified files.
 */
import { nodeEndpoint } from './node-endpoint.ts';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { MANIFEST_FILE, parseManifest, type LoadedComponent } from '../../src/core/runtime/index.ts';
import type { ToolSlot } from '../../src/core/runtime/runtime.ts';
import { isolatedTool, type ComponentFiles, type WorkerHandle } from '../../src/core/runtime/tool-worker.ts';
import type { ToolLimits } from '../../src/core/runtime/tools.ts';

const entry = new URL('./tool-worker-entry.mjs', import.meta.url);

/** A worker thread running the tool host; TypeScript is loaded through tsx, as in the rest of the server. */
export function spawnToolThread(): WorkerHandle {
  const worker = new Worker(entry);
  let exited = false;
  return {
    endpoint: nodeEndpoint(worker),
    terminate: () => void worker.terminate(),
    onExit(listener) {
      const once = (why: string) => {
        if (exited) return;
        exited = true;
        listener(why);
      };
      worker.once('exit', (code) => once(`exit code ${code}`));
      worker.once('error', (err) => once(err.message));
    },
  };
}

/** Every file of the component built into `dir`, as the manifest lists them. */
export async function componentFiles(dir: string): Promise<ComponentFiles> {
  const manifestBytes = new Uint8Array(await readFile(path.join(dir, MANIFEST_FILE)));
  const manifest = parseManifest(manifestBytes);
  const files: ComponentFiles = { [MANIFEST_FILE]: manifestBytes };
  for (const { file } of [manifest.glue, ...manifest.coreModules]) files[file] = new Uint8Array(await readFile(path.join(dir, file)));
  return files;
}

/**
 * A RuntimeSetup.startTool that runs every tool in its own worker thread, under the limits it declares (lowered to
 * `limits` where those are lower).
 */
export function threadedTools(limits: Partial<ToolLimits> = {}): (component: LoadedComponent) => Promise<ToolSlot> {
  return (component) => isolatedTool({ spawn: spawnToolThread, componentId: component.id, files: component.files, limits });
}
