import { FerryError, isFerryError } from '../errors.ts';
import type { Engine, FinishReason } from './engine.ts';

/**
 * Speculative decoding across two engines: a draft engine (small, near: the device) proposes k tokens greedily, the
 * target (the cloud worker's model) checks them in one forward pass and returns its own greedy pick at every
 * position. The longest prefix of the draft that agrees is accepted, plus the target's own next token, so every round
 * yields at least one token and the output is exactly the target's greedy output, whatever the draft proposes.
 */

/** A target's answer to one draft: how many draft ids it accepts, and its own next id (null: it ends the generation). */
export interface Verdict {
  readonly accepted: number;
  readonly next: number | null;
}

/** The longest prefix of `draft` that equals the target's picks, and the target's pick after it. */
export function acceptDraft(draft: readonly number[], argmax: readonly (number | null)[]): Verdict {
  if (argmax.length !== draft.length + 1) {
    throw new FerryError('llm/bad-verify', `A verification must give ${draft.length + 1} picks for a draft of ${draft.length}, got ${argmax.length}.`);
  }
  let accepted = 0;
  while (accepted < draft.length && argmax[accepted] === draft[accepted]) accepted++;
  return { accepted, next: argmax[accepted]! };
}

/**
 * The target side of one speculative session: it holds the context (prompt and every token decided so far) and
 * extends it by each verdict. Implemented over a local Engine (engineVerifier) and over the relay (protocol/verify).
 */
export interface DraftVerifier {
  verify(draft: readonly number[], signal?: AbortSignal): Promise<Verdict>;
}

/** A verifier over an engine with `verify`, keeping the session's context in the engine's `slot`. */
export function engineVerifier(engine: Pick<Engine, 'info' | 'verify'>, prompt: readonly number[], slot?: string): DraftVerifier {
  const verify = engine.verify?.bind(engine);
  if (!verify) throw new FerryError('llm/unsupported', `Engine ${engine.info.id} cannot verify drafts (it has no verify).`);
  const context = [...prompt];
  return {
    async verify(draft, signal) {
      const { argmax } = await verify({ context, draft, ...(slot === undefined ? {} : { slot }), ...(signal ? { signal } : {}) });
      const verdict = acceptDraft(draft, argmax);
      if (verdict.next !== null) context.push(...draft.slice(0, verdict.accepted), verdict.next);
      return verdict;
    },
  };
}

export interface DraftLengthOptions {
  /** Bounds of k. Default 1 … 16 (node-llama-cpp's and llama.cpp's default drafts are up to 16). */
  readonly min?: number;
  readonly max?: number;
  /** k before anything is measured. Default 4. */
  readonly initial?: number;
  /** A fixed k (for measuring): no adaptation. */
  readonly fixed?: number;
  /**
   * A per-token latency target (ms, drafting and round trip included). When set, k is the shortest draft expected
   * to meet it: every drafted id costs the verifying server a position whether it is accepted or not, so a session
   * already within its target drafts no further than it needs (the rounds' measured time rises with the server's
   * load, and k with it). When no k meets it, the fastest k.
   */
  readonly targetMsPerToken?: number;
}

/**
 * How many tokens to draft next. With a per-token acceptance rate a, a draft of k yields (1 − a^(k+1)) / (1 − a)
 * tokens per round in expectation, and a round costs k drafted tokens plus one verification round trip; k is the
 * one with the most tokens per millisecond, or with a latency target the shortest that meets it. Acceptance is a decaying count over recent rounds (a draft rejected at
 * position i counts i agreements and one disagreement); costs are moving averages.
 */
export class DraftLength {
  readonly #min: number;
  readonly #max: number;
  readonly #fixed: number | undefined;
  readonly #target: number | undefined;
  #k: number;
  // A weak prior (4 observations at 0.5), so the first rounds decide quickly.
  #agree = 2;
  #seen = 4;
  #draftMsPerToken: number | undefined;
  #roundMs: number | undefined;

  constructor(options: DraftLengthOptions = {}) {
    this.#min = options.min ?? 1;
    this.#max = options.max ?? 16;
    if (!(Number.isInteger(this.#min) && Number.isInteger(this.#max) && this.#min >= 0 && this.#max >= this.#min && this.#max <= 64)) {
      throw new FerryError('llm/bad-option', `Draft length bounds must be integers with 0 ≤ min ≤ max ≤ 64, got ${this.#min} … ${this.#max}.`);
    }
    this.#fixed = options.fixed;
    if (this.#fixed !== undefined && !(Number.isInteger(this.#fixed) && this.#fixed >= 0 && this.#fixed <= 64)) {
      throw new FerryError('llm/bad-option', `A fixed draft length must be an integer from 0 to 64, got ${this.#fixed}.`);
    }
    this.#target = options.targetMsPerToken;
    if (this.#target !== undefined && !(this.#target > 0 && Number.isFinite(this.#target))) {
      throw new FerryError('llm/bad-option', `A per-token latency target must be a positive number of ms, got ${this.#target}.`);
    }
    this.#k = this.#fixed ?? Math.min(this.#max, Math.max(this.#min, options.initial ?? 4));
  }

  /** The draft length for the next round. */
  get next(): number {
    return this.#k;
  }

  /** Per-token acceptance rate as measured so far. */
  get acceptance(): number {
    return this.#agree / this.#seen;
  }

  /** Records a round: `drafted` ids proposed in `draftMs`, `accepted` of them taken, verified in `verifyMs` (round trip). */
  record(round: { drafted: number; accepted: number; draftMs: number; verifyMs: number }): void {
    const { drafted, accepted } = round;
    const decay = 0.8;
    this.#agree = this.#agree * decay + accepted;
    this.#seen = this.#seen * decay + accepted + (accepted < drafted ? 1 : 0);
    const ewma = (old: number | undefined, value: number) => (old === undefined ? value : old * 0.7 + value * 0.3);
    if (drafted > 0) this.#draftMsPerToken = ewma(this.#draftMsPerToken, round.draftMs / drafted);
    this.#roundMs = ewma(this.#roundMs, round.verifyMs);
    if (this.#fixed === undefined) this.#k = this.#best();
  }

  #best(): number {
    const a = Math.min(this.acceptance, 0.999);
    const perToken = this.#draftMsPerToken ?? 0;
    const round = Math.max(this.#roundMs ?? 1, 0.01);
    let best = this.#min;
    let bestRate = -1;
    for (let k = this.#min; k <= this.#max; k++) {
      const rate = (1 - a ** (k + 1)) / (1 - a) / (k * perToken + round);
      if (this.#target !== undefined && 1 / rate <= this.#target) return k;
      if (rate > bestRate) {
        best = k;
        bestRate = rate;
      }
    }
    return best;
  }
}

export interface SpeculativeRequest {
  /** The draft engine: it must share the target's vocabulary (same tokenizer id). */
  readonly draft: Engine;
  readonly verifier: DraftVerifier;
  /** The exact prompt ids (as prepared for the target: BOS included). */
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  /** The draft engine's slot: its KV stays between rounds. */
  readonly slot?: string;
  readonly signal?: AbortSignal;
  readonly draftLength?: DraftLength;
  /** Each round's decided tokens, as soon as the target has spoken. */
  readonly onTokens?: (ids: readonly number[]) => void;
  /**
   * A verifier for a fresh session at `context` (the prompt and every token decided so far), after the current one
   * failed with `cause` (verify/connection-lost or verify/timeout): the round is verified there, once. Absent: the
   * failure is the caller's.
   */
  readonly resume?: (context: readonly number[], cause: FerryError) => Promise<DraftVerifier>;
}

export interface SpeculativeResult {
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason;
  /** Verifications (target passes) made. */
  readonly rounds: number;
  readonly drafted: number;
  readonly accepted: number;
  readonly draftMs: number;
  readonly verifyMs: number;
}

/** One round of speculative decoding: the ids decided (accepted draft ids, then the target's own next one). */
export interface SpeculativeRound {
  readonly ids: readonly number[];
  readonly drafted: number;
  readonly accepted: number;
  readonly draftMs: number;
  readonly verifyMs: number;
  /** The target ended the generation after `ids`. */
  readonly end: boolean;
}

/**
 * The rounds of a speculative generation, as they are decided; the budget is never exceeded. A consumer that stops
 * iterating (a stop sequence, a cancel) stops the rounds there.
 */
export async function* speculativeRounds(request: Omit<SpeculativeRequest, 'onTokens'>): AsyncGenerator<SpeculativeRound> {
  const { draft, maxTokens, signal } = request;
  let verifier = request.verifier;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new FerryError('llm/bad-request', `maxTokens must be a positive integer, got ${maxTokens}.`);
  if (request.prompt.length === 0) throw new FerryError('llm/bad-request', 'Speculative decoding needs a prompt of at least one token.');
  const lengths = request.draftLength ?? new DraftLength();
  const context = [...request.prompt];
  let produced = 0;
  while (produced < maxTokens && !signal?.aborted) {
    // A round yields up to k + 1 tokens: never draft past the budget.
    const k = Math.min(lengths.next, maxTokens - produced - 1);
    const started = performance.now();
    const proposal = k > 0 ? await greedyDraft(draft, context, k, request.slot, signal) : [];
    const draftMs = performance.now() - started;
    // Cancelled: the round in flight decides nothing; what was decided before stands.
    if (signal?.aborted) return;
    let verdict: Verdict | undefined;
    for (let resumed = false; !verdict; resumed = true) {
      try {
        verdict = await verifier.verify(proposal, signal);
      } catch (err) {
        if (signal?.aborted) return;
        // A lost or stuck verifier decided nothing this round: a fresh session at the tokens decided so far does.
        if (resumed || !request.resume || !isResumable(err)) throw err;
        verifier = await request.resume(context, err);
      }
    }
    const verifyMs = performance.now() - started - draftMs;
    lengths.record({ drafted: proposal.length, accepted: verdict.accepted, draftMs, verifyMs });
    const ids = proposal.slice(0, verdict.accepted);
    if (verdict.next !== null) ids.push(verdict.next);
    context.push(...ids);
    produced += ids.length;
    yield { ids, drafted: proposal.length, accepted: verdict.accepted, draftMs, verifyMs, end: verdict.next === null };
    if (verdict.next === null) return;
  }
}

const isResumable = (err: unknown): err is FerryError => isFerryError(err, 'verify/connection-lost') || isFerryError(err, 'verify/timeout');

/** Generates greedily with `draft` proposing and the verifier deciding: the target's own greedy tokens, in fewer passes. */
export async function speculativeDecode(request: SpeculativeRequest): Promise<SpeculativeResult> {
  const tokens: number[] = [];
  let rounds = 0;
  let drafted = 0;
  let accepted = 0;
  let draftMs = 0;
  let verifyMs = 0;
  let finishReason: FinishReason = 'length';
  for await (const round of speculativeRounds(request)) {
    rounds++;
    drafted += round.drafted;
    accepted += round.accepted;
    draftMs += round.draftMs;
    verifyMs += round.verifyMs;
    tokens.push(...round.ids);
    if (round.ids.length > 0) request.onTokens?.(round.ids);
    if (round.end) finishReason = 'stop';
  }
  if (finishReason === 'length' && tokens.length < request.maxTokens && request.signal?.aborted) finishReason = 'cancelled';
  return { tokens, finishReason, rounds, drafted, accepted, draftMs, verifyMs };
}

/** Up to k greedy tokens from the draft engine (fewer when it would end the generation). */
async function greedyDraft(engine: Engine, context: readonly number[], k: number, slot: string | undefined, signal: AbortSignal | undefined): Promise<number[]> {
  const ids: number[] = [];
  for await (const event of engine.generate({ prompt: { tokens: context }, maxTokens: k, temperature: 0, ...(slot === undefined ? {} : { slot }), ...(signal ? { signal } : {}) })) {
    if (event.type === 'done') return [...event.tokens];
    if (event.id !== null) ids.push(event.id);
  }
  return ids;
}
