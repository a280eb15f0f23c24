/**
 * An LLM worker for tests (workers/llm.worker.ts's API) whose "GPU" engine is wllama failing as a lost WebGPU
 * device does, after `afterTokens` (the load request's modelId, `gpu-loss-<n>`); the fallback is the same model on
 * wllama. What the page sees of a mid-generation switch — the `engine` wire event, the fallback notice — is the
 * real worker's.
 */
import { expose } from 'comlink';
import { openWithFallback } from '../../src/core/llm/fallback-engine.ts';
import { createLlmWorkerApi, openEngine } from '../../src/browser/llm/worker-api.ts';
import { failing, gpuLost } from './failing-engine.ts';

expose(
  createLlmWorkerApi(async (request, progress) => {
    const after = Number(/^gpu-loss-(\d+)$/.exec(request.modelId ?? '')?.[1]);
    if (request.kind !== 'wllama' || !Number.isInteger(after)) return openEngine(request, progress);
    const cpu = { ...request, modelId: 'cpu-fallback' };
    return openWithFallback(async () => failing(await openEngine(cpu, progress), after, gpuLost, { id: 'web-llm', kind: 'webgpu', model: 'gpu-model' }), {
      open: () => openEngine(cpu, progress),
      onSwitch: (change) => progress({ type: 'fallback', from: 'web-llm', code: change.code, text: change.message }),
    });
  }),
);
