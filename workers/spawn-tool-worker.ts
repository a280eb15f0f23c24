/** Spawns a tool worker (workers/tool.worker.ts) for the runtime's isolated tools, from the agent or node worker. */
import type { WorkerHandle } from '../src/core/runtime/tool-worker.ts';

export function spawnToolWorker(): WorkerHandle {
  const worker = new Worker(new URL('./tool.worker.ts', import.meta.url), { type: 'module' });
  return {
    endpoint: worker,
    terminate: () => worker.terminate(),
    onExit: (listener) => worker.addEventListener('error', (e) => listener(e.message || 'the tool worker failed to load'), { once: true }),
  };
}
