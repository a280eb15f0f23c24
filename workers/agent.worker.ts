/**
 * The agent worker: the runtime (src/core/runtime/agent-api.ts) off the page's thread, reached through comlink
 * (src/browser/agent-client.ts). Its engine is wllama in this worker; its store IndexedDB (or memory); each tool
 * runs in a nested worker (workers/tool.worker.ts) so a runaway call can be stopped.
 */
import { expose } from 'comlink';
import { openIdbStore } from '../src/browser/idb-store.ts';
import { createWllamaEngine, type WllamaEngineOptions } from '../src/browser/llm/wllama-engine.ts';
import { cpuShare, withCpuShare } from '../src/core/llm/cpu-share.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { createAgentApi } from '../src/core/runtime/agent-api.ts';
import { spawnToolWorker } from './spawn-tool-worker.ts';

export type BrowserEngineSpec = { kind: 'wllama' } & WllamaEngineOptions;

/**
 * The loaded model outlives a session: the app reopens a session (after a fork, a rollback, a move back, another
 * session) with the same model, and loading it again would cost seconds on a large file. The runtime disposes its
 * engine on every start, so it gets a handle whose dispose() keeps the model; a different model replaces it.
 */
let kept: { key: string; engine: Promise<Engine> } | undefined;
/** "Ferry may use at most this share of the CPU" on this device: every generation here obeys it, from its next token. */
const share = cpuShare();

function engineKey(spec: BrowserEngineSpec): string {
  const file = spec.model as Blob & { name?: string; lastModified?: number };
  return JSON.stringify([spec.modelId ?? '', file.name ?? '', file.size, file.lastModified ?? 0, spec.contextSize ?? 0, spec.threads ?? 1]);
}

async function keptEngine(spec: BrowserEngineSpec): Promise<Engine> {
  const key = engineKey(spec);
  if (kept?.key !== key) {
    const old = kept;
    kept = { key, engine: createWllamaEngine(spec).then((e) => withCpuShare(e, share)) };
    await old?.engine.then((e) => e.dispose(), () => undefined);
    // A model that failed to load is not kept: the next start tries again.
    kept.engine.catch(() => {
      if (kept?.key === key) kept = undefined;
    });
  }
  const engine = await kept.engine;
  return {
    info: engine.info,
    tokenize: (text, options) => engine.tokenize(text, options),
    detokenize: (ids) => engine.detokenize(ids),
    generate: (request) => engine.generate(request),
    ...(engine.saveKv ? { saveKv: (slot: string) => engine.saveKv!(slot) } : {}),
    ...(engine.loadKv ? { loadKv: (slot: string, state: Parameters<NonNullable<Engine['loadKv']>>[1]) => engine.loadKv!(slot, state) } : {}),
    ...(engine.releaseSlot ? { releaseSlot: (slot: string) => engine.releaseSlot!(slot) } : {}),
    dispose: async () => undefined,
  };
}

const api = {
  ...createAgentApi<BrowserEngineSpec>({
    createEngine: keptEngine,
    openStore: async (name) => openIdbStore({ name }),
    spawnToolWorker,
  }),
  setCpuShare: (fraction: number): void => share.set(fraction),
};

export type AgentWorkerApi = typeof api;
expose(api);
