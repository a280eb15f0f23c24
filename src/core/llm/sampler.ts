import { FerryError } from '../errors.ts';

/**
 * Ferry's sampler, the same code on every engine, so a sampled generation is token-identical wherever it runs
 * (node-llama-cpp, wllama), and continues token for token after a move.
 *
 * The engines' own samplers cannot give that: each draws from a random stream seeded once per request (a
 * continuation on another host starts the stream again), and their draws differ (llama.cpp built with libstdc++
 * natively and libc++ in WebAssembly). Here the random number of each token is a pure function of the seed and the
 * token's position in the sequence (prompt included), so the sampler's whole state is (seed, position), which a
 * checkpoint records, and a host that prefills the same ids draws the same numbers.
 *
 * Each engine hands over its top-K candidates with their probabilities at temperature 1 (softmax of the raw logits;
 * the normalising constant does not matter) and appends the token chosen here. The steps, in order:
 * 1. repetition penalty: a candidate among the last `REPEAT_WINDOW` ids of the sequence has its probability
 *    divided by `repeatPenalty` (llama.cpp divides the logit, which only works on raw logits an engine may not give);
 * 2. top-p over what is left, then min-p (relative to the most likely candidate);
 * 3. temperature: weights p^(1/T);
 * 4. the draw: u(seed, position) in [0, 1) picks by cumulative weight, over the kept candidates in id order. Not in
 *    probability order: two engines' logits differ in the last digits (another llama.cpp, WebAssembly's float
 *    order), which swaps near-equal neighbours in that order and moves a whole slice of the cumulative weight; in id
 *    order such a difference moves a boundary only by itself, so the same draw picks the same token.
 * Greedy decoding (temperature 0) never comes here: it stays inside the engines, whose argmax already agrees.
 */

export interface Candidate {
  readonly token: number;
  /** Probability at temperature 1 (any positive multiple of it). */
  readonly p: number;
}

export interface SamplerSettings {
  readonly temperature: number;
  /** Candidates the engine hands over; 0 = DEFAULT_TOP_K. */
  readonly topK?: number | undefined;
  readonly topP?: number | undefined;
  readonly minP?: number | undefined;
  /** 1 = off. */
  readonly repeatPenalty?: number | undefined;
  readonly seed: number;
}

export const DEFAULT_TOP_K = 40;
/** More candidates than this are not handed over: the tail past them carries no mass worth the copying. */
export const MAX_TOP_K = 256;
/** How many of the last ids the repetition penalty looks at. */
export const REPEAT_WINDOW = 64;

/** How many candidates an engine should hand over for these settings. */
export function candidateCount(settings: Pick<SamplerSettings, 'topK'>): number {
  return Math.min(MAX_TOP_K, settings.topK || DEFAULT_TOP_K);
}

/**
 * The token at `position` (its index in the whole sequence: prompt ids, then generated ones). `recent`: the
 * sequence's ids before it (only the last REPEAT_WINDOW are read).
 */
export function sampleToken(candidates: readonly Candidate[], settings: SamplerSettings, position: number, recent: readonly number[] = []): number {
  if (candidates.length === 0) throw new FerryError('llm/engine-failed', 'The engine handed the sampler no candidates; it has no logits for this position.');
  const penalty = settings.repeatPenalty ?? 1;
  const seen = penalty === 1 ? undefined : new Set(recent.slice(-REPEAT_WINDOW));
  const ordered = candidates
    .slice(0, candidateCount(settings))
    .map((c) => ({ token: c.token, p: seen?.has(c.token) ? c.p / penalty : c.p }))
    .filter((c) => c.p > 0 && Number.isFinite(c.p))
    .sort((a, b) => b.p - a.p || a.token - b.token);
  if (ordered.length === 0) throw new FerryError('llm/engine-failed', 'Every candidate the engine handed the sampler has probability 0.');
  const total = ordered.reduce((sum, c) => sum + c.p, 0);
  const topP = settings.topP ?? 1;
  const floor = (settings.minP ?? 0) * ordered[0]!.p;
  const kept: typeof ordered = [];
  let mass = 0;
  for (const c of ordered) {
    if (kept.length > 0 && (mass >= topP * total || c.p < floor)) break;
    kept.push(c);
    mass += c.p;
  }
  kept.sort((a, b) => a.token - b.token);
  // p^(1/T) in log space, so small probabilities at low temperatures do not underflow to 0.
  const logs = kept.map((c) => Math.log(c.p) / settings.temperature);
  const top = Math.max(...logs);
  const weights = logs.map((l) => Math.exp(l - top));
  const sum = weights.reduce((s, w) => s + w, 0);
  let r = samplerRandom(settings.seed, position) * sum;
  for (let i = 0; i < kept.length; i++) {
    r -= weights[i]!;
    if (r < 0) return kept[i]!.token;
  }
  return kept[kept.length - 1]!.token;
}

/** A uniform number in [0, 1) from (seed, position) alone: two rounds of a 32-bit avalanche mix (murmur3's fmix32). */
export function samplerRandom(seed: number, position: number): number {
  const high = fmix32((seed ^ Math.imul(position, 0x9e3779b9)) >>> 0);
  const low = fmix32((high ^ Math.imul(position + 1, 0x85ebca6b) ^ seed) >>> 0);
  // 53 bits: 32 from `high`, 21 from `low`.
  return (high * 2 ** 21 + (low >>> 11)) / 2 ** 53;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
