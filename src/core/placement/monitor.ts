/**
 * Watches a generation on the node it runs on (DESIGN §7 "when": during a generation, when the measured rate falls
 * well short of the estimate) and says when to move it live. Each token is timed; the rate over the last few tokens
 * is compared with the estimate the placement was made on (shouldMigrate); when it falls well short, the placement
 * is decided again with the measured rate (redecideMidGeneration), whose hysteresis keeps a session from moving
 * for a small gain. It checks at most every `checkEvery` tokens, and says "move" once.
 */
import type { NodeProfile } from './profile.ts';
import { redecideMidGeneration, shouldMigrate, type Decision, type PendingStep, type PlacementPrefs } from './policy.ts';
import { remainingReplyTokens } from './reply-length.ts';

export interface GenerationWatchOptions {
  /** The step as placed; its `expectedOutputTokens` is the reply length expected (reply-length.ts). */
  readonly step: PendingStep;
  /** The most tokens the reply may take. Default: `step.expectedOutputTokens` (then a reply cannot run past it). */
  readonly replyLimit?: number;
  readonly nodes: readonly NodeProfile[];
  readonly prefs: PlacementPrefs;
  /** The node the generation runs on. */
  readonly current: string;
  /** Tokens in the rate's window. Default 16. */
  readonly window?: number;
  /** Tokens between two checks once one said "stay". Default 16. */
  readonly checkEvery?: number;
  readonly now?: () => number;
}

export class GenerationWatch {
  readonly #opts: GenerationWatchOptions;
  readonly #times: number[] = [];
  readonly #estimatedTps: number;
  #tokens = 0;
  #nextCheck: number;
  #moved = false;
  /** The last re-decision, moving or not (for "where it runs" to show its reason). */
  last: Decision | undefined;

  constructor(opts: GenerationWatchOptions) {
    this.#opts = opts;
    const here = opts.nodes.find((n) => n.id === opts.current);
    this.#estimatedTps = here?.models[opts.step.model]?.decodeTps ?? 0;
    this.#nextCheck = opts.window ?? 16;
  }

  /** A token was generated now. Returns the decision to move, once, when it is time to. */
  token(): Decision | undefined {
    const now = (this.#opts.now ?? (() => performance.now()))();
    const window = this.#opts.window ?? 16;
    this.#times.push(now);
    if (this.#times.length > window + 1) this.#times.shift();
    this.#tokens += 1;
    if (this.#moved || this.#estimatedTps <= 0 || this.#tokens < this.#nextCheck || this.#times.length < 2) return undefined;
    const span = (this.#times.at(-1)! - this.#times[0]!) / 1000;
    const measured = span > 0 ? (this.#times.length - 1) / span : Infinity;
    const { step } = this.#opts;
    const remaining = remainingReplyTokens(step.expectedOutputTokens, this.#tokens, this.#opts.replyLimit ?? step.expectedOutputTokens);
    this.#nextCheck = this.#tokens + (this.#opts.checkEvery ?? 16);
    if (!shouldMigrate(Math.min(measured, 1e9), this.#estimatedTps, remaining, { observedTokens: this.#tokens, minObservedTokens: window }).redecide) return undefined;
    const revised = { ...step, expectedOutputTokens: this.#tokens + remaining };
    const decision = redecideMidGeneration(revised, this.#opts.nodes, this.#opts.prefs, this.#opts.current, { measuredDecodeTps: measured, generatedTokens: this.#tokens, now: Date.now() });
    this.last = decision;
    if (!decision.move) return undefined;
    this.#moved = true;
    return decision;
  }
}
