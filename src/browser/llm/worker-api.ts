/** The LLM worker's side of the protocol: holds the one loaded engine and the generations in progress. */
import { FerryError, isFerryError } from '../../core/errors.ts';
import type { Engine, EngineInfo, GenerateEvent } from '../../core/llm/index.ts';
import './comlink-errors.ts';
import { downloadModel } from './model-download.ts';
import { LLM_PROTOCOL_VERSION, type LlmWorkerApi, type LoadProgress, type LoadRequest, type WireGenerateRequest } from './protocol.ts';
import { createWllamaEngine } from './wllama-engine.ts';

interface Running {
  readonly events: AsyncIterator<GenerateEvent>;
  readonly controller: AbortController;
}

export function createLlmWorkerApi(): LlmWorkerApi {
  let engine: Engine | undefined;
  let loading: Promise<unknown> = Promise.resolve();
  const running = new Map<number, Running>();
  let nextId = 1;

  const current = (): Engine => {
    if (!engine) throw new FerryError('llm/not-loaded', 'No model is loaded in the LLM worker; load one first.');
    return engine;
  };

  async function unload(): Promise<void> {
    for (const [, run] of running) run.controller.abort();
    running.clear();
    const old = engine;
    engine = undefined;
    await old?.dispose();
  }

  async function open(request: LoadRequest, progress: (p: LoadProgress) => void): Promise<Engine> {
    if (request.kind === 'wllama') {
      const model = request.model instanceof Blob ? request.model : await downloadModel(request.model.url, { onProgress: (p) => progress({ type: 'download', ...p }) });
      progress({ type: 'loading', text: 'Loading the model into wllama (CPU)' });
      return createWllamaEngine({ model, ...pick(request, ['modelId', 'contextSize', 'threads']) });
    }
    if (request.kind === 'web-llm') {
      const { createWebLlmEngine } = await import('./webllm-engine.ts');
      const { fallback, ...webLlm } = request;
      try {
        return await createWebLlmEngine({ ...webLlm, onProgress: (p) => progress({ type: 'web-llm', ...p }) });
      } catch (err) {
        // webLlmError marks the failures the CPU engine can take over from; anything else is the caller's to fix.
        if (!fallback || !isFerryError(err) || err.details?.fallback !== 'wllama') throw err;
        progress({ type: 'fallback', from: 'web-llm', code: err.code, text: err.message.includes('wllama') ? err.message : `${err.message} Using wllama on the CPU instead.` });
        return open(fallback, progress);
      }
    }
    throw new FerryError('llm/bad-request', `Unknown engine kind ${JSON.stringify((request as { kind: unknown }).kind)}; expected 'wllama' or 'web-llm'.`);
  }

  return {
    version: LLM_PROTOCOL_VERSION,
    async load(request, onProgress) {
      const run = loading.then(async (): Promise<EngineInfo> => {
        await unload();
        engine = await open(request, (p) => void Promise.resolve(onProgress?.(p)).catch(() => undefined));
        return engine.info;
      });
      loading = run.catch(() => undefined);
      return run;
    },
    tokenize: (text, options) => current().tokenize(text, options),
    detokenize: (ids) => current().detokenize(ids),
    async start(request: WireGenerateRequest) {
      const controller = new AbortController();
      // generate() checks the request now: a bad one throws here, before an id exists.
      const events = current().generate({ ...request, signal: controller.signal })[Symbol.asyncIterator]();
      const id = nextId++;
      running.set(id, { events, controller });
      return id;
    },
    async next(id) {
      const run = running.get(id);
      if (!run) throw new FerryError('llm/unknown-generation', `Generation ${id} is not running (it ended, or the model was unloaded).`);
      try {
        const step = await run.events.next();
        if (step.done) throw new FerryError('llm/no-result', 'The engine ended the generation without a result.');
        if (step.value.type === 'done') {
          running.delete(id);
          await run.events.return?.(undefined); // let the generator run its cleanup
        }
        return step.value;
      } catch (cause) {
        running.delete(id);
        throw cause;
      }
    },
    async cancel(id) {
      running.get(id)?.controller.abort();
    },
    releaseSlot: async (slot) => current().releaseSlot?.(slot),
    unload,
  };
}

function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out;
}
