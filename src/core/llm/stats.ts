import type { GenerationStats } from './engine.ts';

/**
 * Timing of one generation: prefill ends when the first token is ready (so ttft includes queueing and prefill),
 * decode runs from the first token to the last. Rates are per second; a phase with no work reports 0.
 */
export class GenerationClock {
  readonly #start: number;
  #first: number | undefined;
  #last: number | undefined;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.#start = now();
  }

  token(): void {
    const t = this.now();
    this.#first ??= t;
    this.#last = t;
  }

  stats(promptTokens: number, cachedTokens: number, completionTokens: number): GenerationStats {
    const end = this.now();
    const first = this.#first ?? end;
    const last = this.#last ?? end;
    const prefillMs = first - this.#start;
    const decodeMs = last - first;
    const prefilled = promptTokens - cachedTokens;
    return {
      promptTokens,
      cachedTokens,
      completionTokens,
      prefillMs,
      decodeMs,
      ttftMs: prefillMs,
      prefillTps: prefillMs > 0 ? (prefilled / prefillMs) * 1000 : 0,
      // The first token comes out of prefill: decode made the other n - 1.
      decodeTps: decodeMs > 0 ? ((completionTokens - 1) / decodeMs) * 1000 : 0,
    };
  }
}

/** Merges usage reported by a remote engine with locally measured times. */
export function remoteStats(clock: GenerationClock, usage: { promptTokens: number; cachedTokens?: number; completionTokens: number }): GenerationStats {
  return clock.stats(usage.promptTokens, usage.cachedTokens ?? 0, usage.completionTokens);
}
