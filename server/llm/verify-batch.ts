import { FerryError } from '../../src/core/errors.ts';
import type { Engine, VerifyRequest, VerifyResult } from '../../src/core/llm/engine.ts';

export interface VerifyBatchOptions {
  /**
   * How long the first verification of a batch waits for others (ms). Default 0: the batch starts once this turn of
   * the event loop is over, with every round that arrived in it. A longer wait only delays rounds: while the engine
   * evaluates a pass, node-llama-cpp gathers what sequences queue meanwhile into its next batch anyway, and an idle
   * engine gains nothing by waiting.
   */
  readonly windowMs?: number;
  /** A batch this large starts at once. Default: the engine's slots (sessions it evaluates at once), else 8. */
  readonly maxBatch?: number;
}

/**
 * Verifications from many sessions, started together so the engine evaluates them in one forward pass
 * (node-llama-cpp puts what its sequences queue in the same cycle into one llama.cpp batch, up to its batch size:
 * the context size). A lone round waits no longer than the end of the current event-loop turn, unless a window is set.
 */
export class VerifyBatcher {
  readonly #verify: (request: VerifyRequest) => Promise<VerifyResult>;
  readonly #windowMs: number;
  readonly #maxBatch: number;
  #pending: Array<{ request: VerifyRequest; resolve(r: VerifyResult): void; reject(e: unknown): void }> = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #immediate: ReturnType<typeof setImmediate> | undefined;
  #passes = 0;
  #rounds = 0;

  constructor(readonly engine: Engine, options: VerifyBatchOptions = {}) {
    const verify = engine.verify?.bind(engine);
    if (!verify) throw new FerryError('verify/no-engine', `Engine ${engine.info.id} cannot verify drafts.`);
    this.#verify = verify;
    this.#windowMs = options.windowMs ?? 0;
    this.#maxBatch = options.maxBatch ?? (engine as { slots?: number }).slots ?? 8;
  }

  /** Batches started, and rounds verified in them: rounds / passes is the mean batch. */
  get stats(): { passes: number; rounds: number } {
    return { passes: this.#passes, rounds: this.#rounds };
  }

  verify(request: VerifyRequest): Promise<VerifyResult> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ request, resolve, reject });
      if (this.#pending.length >= this.#maxBatch) this.#flush();
      else if (this.#windowMs > 0) this.#timer ??= setTimeout(() => this.#flush(), this.#windowMs);
      else this.#immediate ??= setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    clearTimeout(this.#timer);
    clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    const batch = this.#pending;
    this.#pending = [];
    if (batch.length === 0) return;
    this.#passes++;
    this.#rounds += batch.length;
    // Started in one synchronous loop: every sequence queues its tokens before the engine dispatches a batch.
    for (const { request, resolve, reject } of batch) this.#verify(request).then(resolve, reject);
  }
}
