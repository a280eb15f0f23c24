/**
 * The page's side of the LLM worker: `LlmClient.load()` gives an Engine whose calls run in the worker. Tokens
 * stream by pulling one event per call; aborting the request's signal cancels the worker's generation. If the
 * worker dies or is terminated, every call still waiting rejects with a typed error (comlink alone would hang).
 */
import { wrap, proxy, releaseProxy, type Remote } from 'comlink';
import { FerryError } from '../../core/errors.ts';
import type { Engine, EngineInfo, GenerateEvent, GenerateRequest } from '../../core/llm/index.ts';
import './comlink-errors.ts';
import { LLM_PROTOCOL_VERSION, type LlmWorkerApi, type LoadProgress, type LoadRequest, type WireGenerateEvent } from './protocol.ts';

export function spawnLlmWorker(): Worker {
  return new Worker(new URL('../../../workers/llm.worker.ts', import.meta.url), { type: 'module', name: 'ferry-llm' });
}

export class LlmClient {
  readonly #worker: Worker;
  readonly #remote: Remote<LlmWorkerApi>;
  readonly #dead: Promise<never>;
  #kill!: (error: FerryError) => void;

  constructor(worker: Worker = spawnLlmWorker()) {
    this.#worker = worker;
    this.#remote = wrap<LlmWorkerApi>(worker);
    this.#dead = new Promise<never>((_, reject) => (this.#kill = reject));
    this.#dead.catch(() => undefined);
    worker.addEventListener('error', (event) => {
      this.#kill(new FerryError('llm/worker-died', `The LLM worker stopped: ${event.message || 'it failed to start or crashed'}. Reload the model.`));
    });
  }

  /** Loads a model in the worker (replacing the one loaded) and returns the Engine for it. */
  async load(request: LoadRequest, options: { onProgress?: (progress: LoadProgress) => void } = {}): Promise<Engine> {
    const version = await this.#call(this.#remote.version);
    if (version !== LLM_PROTOCOL_VERSION) {
      throw new FerryError('llm/protocol-mismatch', `The LLM worker speaks protocol ${version}, the page ${LLM_PROTOCOL_VERSION}. Reload the app to update both.`);
    }
    const onProgress = options.onProgress ? proxy(options.onProgress) : undefined;
    const info = await this.#call(this.#remote.load(request, onProgress));
    return new WorkerEngine(info, this.#remote, (p) => this.#call(p));
  }

  /** Ends the worker; calls still waiting reject with 'llm/worker-died'. */
  terminate(): void {
    this.#worker.terminate();
    this.#kill(new FerryError('llm/worker-died', 'The LLM worker was terminated.'));
    this.#remote[releaseProxy]();
  }

  #call<T>(pending: Promise<T>): Promise<T> {
    return Promise.race([pending, this.#dead]);
  }
}

class WorkerEngine implements Engine {
  #info: EngineInfo;

  constructor(
    info: EngineInfo,
    private readonly remote: Remote<LlmWorkerApi>,
    private readonly call: <T>(pending: Promise<T>) => Promise<T>,
  ) {
    this.#info = info;
  }

  /** The loaded engine's, or its fallback's once web-llm handed over to wllama mid-generation. */
  get info(): EngineInfo {
    return this.#info;
  }

  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]> {
    return this.call(this.remote.tokenize(text, options));
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.call(this.remote.detokenize([...ids]));
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    const { signal, ...wire } = request;
    const remote = this.remote;
    const call = this.call;
    const switched = (info: EngineInfo) => (this.#info = info);
    return {
      async *[Symbol.asyncIterator]() {
        const id = await call(remote.start(wire));
        const onAbort = () => void remote.cancel(id).catch(() => undefined);
        // Already aborted: the worker still ends the generation with one 'cancelled' done event.
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
        let finished = false;
        try {
          for (;;) {
            const event = await call<WireGenerateEvent>(remote.next(id));
            if (event.type === 'engine') {
              switched(event.info);
              continue;
            }
            yield event;
            if (event.type === 'done') {
              finished = true;
              return;
            }
          }
        } finally {
          signal?.removeEventListener('abort', onAbort);
          // The consumer stopped early (break/throw): stop the work in the worker too.
          if (!finished) void drain(remote, id);
        }
      },
    };
  }

  releaseSlot(slot: string): Promise<void> {
    return this.call(this.remote.releaseSlot(slot));
  }

  dispose(): Promise<void> {
    return this.call(this.remote.unload());
  }
}

async function drain(remote: Remote<LlmWorkerApi>, id: number): Promise<void> {
  try {
    await remote.cancel(id);
    while ((await remote.next(id)).type !== 'done');
  } catch {
    // The worker is gone or the generation already ended: nothing is left running.
  }
}
