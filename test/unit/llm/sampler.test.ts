/**
 * Ferry's sampler: a token depends only on the candidates, the settings and (seed, position), so node-llama-cpp
 * continuing a sampled generation from its ids gives exactly the tokens of the generation never cut.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll } from '../../../src/core/llm/index.ts';
import { preparePrompt } from '../../../src/core/llm/prompt.ts';
import { sampleToken, samplerRandom } from '../../../src/core/llm/sampler.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

const CANDIDATES = [{ token: 5, p: 0.5 }, { token: 9, p: 0.3 }, { token: 2, p: 0.15 }, { token: 7, p: 0.05 }];

describe('the sampler', () => {
  it('draws from (seed, position) alone, uniformly', () => {
    expect(samplerRandom(1, 10)).toBe(samplerRandom(1, 10));
    expect(samplerRandom(1, 10)).not.toBe(samplerRandom(1, 11));
    expect(samplerRandom(1, 10)).not.toBe(samplerRandom(2, 10));
    const draws = Array.from({ length: 20_000 }, (_, i) => samplerRandom(3, i));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...draws)).toBeLessThan(1);
    expect(draws.reduce((a, b) => a + b, 0) / draws.length).toBeCloseTo(0.5, 1);
  });

  it('follows the probabilities at temperature 1, and top-p, min-p and the repetition penalty cut as they say', () => {
    const counts = new Map<number, number>();
    for (let position = 0; position < 20_000; position++) {
      const token = sampleToken(CANDIDATES, { temperature: 1, seed: 1 }, position);
      counts.set(token, (counts.get(token) ?? 0) + 1);
    }
    for (const c of CANDIDATES) expect((counts.get(c.token) ?? 0) / 20_000).toBeCloseTo(c.p, 1);
    const picked = (settings: Parameters<typeof sampleToken>[1], recent: number[] = []) =>
      new Set(Array.from({ length: 2000 }, (_, position) => sampleToken(CANDIDATES, settings, position, recent)));
    expect(picked({ temperature: 1, seed: 2, topP: 0.8 })).toEqual(new Set([5, 9]));
    expect(picked({ temperature: 1, seed: 2, minP: 0.2 })).toEqual(new Set([5, 9, 2]));
    // The penalty divides a recent token's probability: 5 at 0.5/100 is now rarer than 7.
    const penalised = Array.from({ length: 5000 }, (_, position) => sampleToken(CANDIDATES, { temperature: 1, seed: 3, repeatPenalty: 100 }, position, [5]));
    expect(penalised.filter((t) => t === 5).length).toBeLessThan(penalised.filter((t) => t === 7).length);
    // Candidates' order as handed over does not matter.
    expect(sampleToken([...CANDIDATES].reverse(), { temperature: 0.7, seed: 4 }, 99)).toBe(sampleToken(CANDIDATES, { temperature: 0.7, seed: 4 }, 99));
  });

  it('picks the same token from probabilities that differ in their last digits, as two engines give them', () => {
    // Forty candidates in near-equal pairs, as a model's flat tail has them; the other engine's differ by one part in
    // 10^4, which reverses every pair's order.
    const here = Array.from({ length: 40 }, (_, i) => ({ token: 100 + i, p: 0.05 - Math.floor(i / 2) * 0.002 + (i % 2) * 1e-6 }));
    const there = here.map((c, i) => ({ token: c.token, p: c.p * (1 + (i % 2 ? -1e-4 : 1e-4)) }));
    const settings = { temperature: 0.8, seed: 11 };
    const differ = Array.from({ length: 5000 }, (_, position) => sampleToken(here, settings, position) !== sampleToken(there, settings, position)).filter(Boolean).length;
    // A boundary moves by the difference itself (~10^-4 of the mass): a draw that close to one is rare.
    expect(differ).toBeLessThanOrEqual(5);
  });
});

let models: Awaited<ReturnType<typeof modelDir>>;
let engine: NodeLlamaEngine;
let other: NodeLlamaEngine;
beforeAll(async () => {
  models = await modelDir();
  const file = await models.model('sampler.gguf');
  [engine, other] = await Promise.all([cpuEngine(file, { slots: 1 }), cpuEngine(file, { slots: 1 })]);
});
afterAll(async () => {
  await Promise.all([engine?.dispose(), other?.dispose()]);
  await models?.cleanup();
});

describe('sampling on node-llama-cpp', () => {
  it.each([
    { temperature: 0.8, seed: 42 },
    { temperature: 1.2, seed: 7, topK: 20, topP: 0.95, minP: 0.01, repeatPenalty: 1.3 },
  ])('a sampled generation cut and continued on another engine has the ids of the one never cut: %o', async (sampling) => {
    const prompt = await preparePrompt(engine, { text: 'Once upon a time' });
    const whole = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 60, ...sampling });
    expect(whole.tokens).toHaveLength(60);
    const first = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 17, ...sampling });
    const rest = await generateAll(other, { prompt: { tokens: [...prompt, ...first.tokens] }, maxTokens: 43, ...sampling });
    expect([...first.tokens, ...rest.tokens]).toEqual(whole.tokens);
    const reseeded = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 60, ...sampling, seed: sampling.seed + 1 });
    expect(reseeded.tokens).not.toEqual(whole.tokens);
  });
});
