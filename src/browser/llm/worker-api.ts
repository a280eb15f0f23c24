/** The LLM worker's side of the protocol: holds the one loaded engine and the generations in progress. */
import { FerryError } from '../../core/errors.ts';
import { openWithFallback } from '../../core/llm/fallback-engine.ts';
import type { Engine, EngineInfo, GenerateEvent } from '../../core/llm/index.ts';
import './comlink-errors.ts';
import { downloadModel } from './model-download.ts';
import { LLM_PROTOCOL_VERSION, type LlmWorkerApi, type LoadProgress, type LoadRequest, type WireGenerateRequest } from './protocol.ts';
import { createWllamaEngine } from './wllama-open.ts';

interface Running {
  readonly events: AsyncIterator<GenerateEvent>;
  readonly controller: AbortController;
  /** The engine as the page last heard of it; an event held back while the page hears of a switch. */
  info: EngineInfo;
  held?: GenerateEvent;
}

export function createLlmWorkerApi(open: typeof openEngine = openEngine): LlmWorkerApi {
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
      running.set(id, { events, controller, info: current().info });
      return id;
    },
    async next(id) {
      const run = running.get(id);
      if (!run) throw new FerryError('llm/unknown-generation', `Generation ${id} is not running (it ended, or the model was unloaded).`);
      try {
        let event: GenerateEvent;
        if (run.held) {
          event = run.held;
          delete run.held;
        } else {
          const step = await run.events.next();
          if (step.done) throw new FerryError('llm/no-result', 'The engine ended the generation without a result.');
          event = step.value;
          // The engine fell back mid-generation: the page hears of it before the next event, in order.
          if (engine && engine.info !== run.info) {
            run.info = engine.info;
            run.held = event;
            return { type: 'engine', info: engine.info };
          }
        }
        if (event.type === 'done') {
          running.delete(id);
          await run.events.return?.(undefined); // let the generator run its cleanup
        }
        return event;
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

/** Opens the engine a load request asks for (the LLM worker's default; tests may open theirs). */
export async function openEngine(request: LoadRequest, progress: (p: LoadProgress) => void): Promise<Engine> {
  if (request.kind === 'wllama') {
    const model = request.model instanceof Blob ? request.model : await downloadModel(request.model.url, { onProgress: (p) => progress({ type: 'download', ...p }) });
    progress({ type: 'loading', text: 'Loading the model into wllama (CPU)' });
    return createWllamaEngine({ model, ...pick(request, ['modelId', 'contextSize', 'threads']) });
  }
  if (request.kind === 'web-llm') {
    const { createWebLlmEngine } = await import('./webllm-engine.ts');
    const { fallback, ...webLlm } = request;
    const gpu = () => createWebLlmEngine({ ...webLlm, onProgress: (p) => progress({ type: 'web-llm', ...p }) });
    if (!fallback) return gpu();
    // webLlmError marks the failures the CPU engine can take over from (on load or mid-reply); others stay errors.
    return openWithFallback(gpu, {
      open: () => openEngine(fallback, progress),
      onSwitch: (change) => progress({ type: 'fallback', from: 'web-llm', code: change.code, text: change.message }),
    });
  }
  throw new FerryError('llm/bad-request', `Unknown engine kind ${JSON.stringify((request as { kind: unknown }).kind)}; expected 'wllama' or 'web-llm'.`);
}

function pick<T extends object, K extends keyof T>(value: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out;
}
