/**
 * Temperature sampling in JS over the engine's top-k probabilities, with a seeded PRNG: wllama's own sampler takes
 * its seed once per loaded model, while a request's seed must make that request reproducible on its own.
 * Greedy decoding (temperature 0) never comes here: it stays in llama.cpp, bit-identical to native.
 */
export interface Candidate {
  readonly token: number;
  /** Softmax probability at temperature 1. */
  readonly p: number;
}

export function sampleToken(candidates: readonly Candidate[], options: { temperature: number; topP: number; random: () => number }): number {
  if (candidates.length === 0) throw new Error('no candidates to sample from');
  // p^(1/T) is softmax(logit / T) up to a constant; computed in log space so small probabilities do not underflow.
  const logs = candidates.map((c) => Math.log(Math.max(c.p, Number.MIN_VALUE)) / options.temperature);
  const max = Math.max(...logs);
  const weights = logs.map((l) => Math.exp(l - max));
  const order = weights.map((w, i) => [w, i] as const).sort((a, b) => b[0] - a[0]);
  const total = weights.reduce((s, w) => s + w, 0);
  // Nucleus: the smallest prefix (by probability) whose mass reaches topP.
  const kept: Array<readonly [number, number]> = [];
  let mass = 0;
  for (const entry of order) {
    kept.push(entry);
    mass += entry[0] / total;
    if (mass >= options.topP) break;
  }
  const keptTotal = kept.reduce((s, [w]) => s + w, 0);
  let r = options.random() * keptTotal;
  for (const [w, i] of kept) {
    r -= w;
    if (r <= 0) return candidates[i]!.token;
  }
  return candidates[kept[kept.length - 1]![1]]!.token;
}

