/**
 * The agent worker: the runtime (src/core/runtime/agent-api.ts) off the page's thread, reached through comlink
 * (src/browser/agent-client.ts). Its engine is wllama in this worker; its store IndexedDB (or memory); each tool
 * runs in a nested worker (workers/tool.worker.ts) so a runaway call can be stopped.
 */
import { expose } from 'comlink';
import { openIdbStore } from '../src/browser/idb-store.ts';
import { createWllamaEngine, type WllamaEngineOptions } from '../src/browser/llm/wllama-engine.ts';
import { createAgentApi } from '../src/core/runtime/agent-api.ts';
import type { WorkerHandle } from '../src/core/runtime/tool-worker.ts';

export type BrowserEngineSpec = { kind: 'wllama' } & WllamaEngineOptions;

function spawnToolWorker(): WorkerHandle {
  const worker = new Worker(new URL('./tool.worker.ts', import.meta.url), { type: 'module' });
  return {
    endpoint: worker,
    terminate: () => worker.terminate(),
    onExit: (listener) => worker.addEventListener('error', (e) => listener(e.message || 'the tool worker failed to load'), { once: true }),
  };
}

const api = createAgentApi<BrowserEngineSpec>({
  createEngine: (spec) => createWllamaEngine(spec),
  openStore: async (name) => openIdbStore({ name }),
  spawnToolWorker,
});

export type AgentWorkerApi = typeof api;
expose(api);
