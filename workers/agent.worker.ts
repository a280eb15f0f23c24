/**
 * The agent worker: the runtime (src/core/host/agent-api.ts) off the page's thread, reached through comlink
 * (src/browser/agent-client.ts). Its engine runs in this worker — on WebGPU where the device can (web-llm for a
 * chosen GPU model, else the session's GGUF through wllama 3), with wllama on the CPU to fall back to, on load or
 * mid-reply; wllama on the CPU otherwise; its store IndexedDB (or memory);
 * each tool runs in a nested worker (workers/tool.worker.ts) so a runaway call can be stopped.
 */
import { expose } from 'comlink';
import { openIdbStore } from '../src/browser/idb-store.ts';
import { openBrowserEngine, type BrowserEngineSpec, type WllamaSpec } from '../src/browser/llm/open-engine.ts';
import { cpuShare } from '../src/core/llm/cpu-share.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { keptHandle } from '../src/core/llm/kept-engine.ts';
import { createAgentApi, type EngineNotices } from '../src/core/host/agent-api.ts';
import { spawnToolWorker } from './spawn-tool-worker.ts';

/**
 * The loaded model outlives a session: the app reopens a session (after a fork, a rollback, a move back, another
 * session) with the same model, and loading it again would cost seconds on a large file. The runtime disposes its
 * engine on every start, so it gets a handle whose dispose() keeps the model (keptHandle); a different model replaces it.
 */
let kept: { key: string; engine: Promise<Engine> } | undefined;
/** Who hears of the kept engine's loading and switching: the api's subscribers (one api per worker). */
let notices: EngineNotices | undefined;
/** "Ferry may use at most this share of the CPU" on this device: every generation here obeys it, from its next token. */
const share = cpuShare();

function wllamaKey(spec: WllamaSpec): unknown[] {
  const file = spec.model as Blob & { name?: string; lastModified?: number };
  return [spec.modelId ?? '', file.name ?? '', file.size, file.lastModified ?? 0, spec.contextSize ?? 0, spec.threads ?? 1];
}

function engineKey(spec: BrowserEngineSpec): string {
  if (spec.kind === 'wllama') return JSON.stringify(wllamaKey(spec));
  return JSON.stringify(spec.kind === 'web-llm' ? ['web-llm', spec.modelId, spec.contextSize ?? 0, wllamaKey(spec.fallback)] : ['wllama-webgpu', wllamaKey(spec.fallback)]);
}

const openEngine = (spec: BrowserEngineSpec): Promise<Engine> =>
  openBrowserEngine(spec, { share, onLoading: (progress, text) => notices?.loading(progress, text), onSwitch: (change) => notices?.switched(change) });

async function keptEngine(spec: BrowserEngineSpec, told: EngineNotices): Promise<Engine> {
  notices = told;
  const key = engineKey(spec);
  if (kept?.key !== key) {
    const old = kept;
    kept = { key, engine: openEngine(spec) };
    await old?.engine.then((e) => e.dispose(), () => undefined);
    // A model that failed to load is not kept: the next start tries again.
    kept.engine.catch(() => {
      if (kept?.key === key) kept = undefined;
    });
  }
  return keptHandle(await kept.engine);
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
