import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll, type DoneEvent } from '../../../src/core/llm/index.ts';
import { tinyVocabulary, TokenType } from '../../../src/core/llm/gguf/tiny-model.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

/**
 * Forks that share their parent's KV: a generation whose prompt starts with what another slot caches copies that
 * slot's cells and prefills only the rest, whether the holder is idle or busy with its own session, and gives the
 * same tokens as a cold run of the same prompt on an engine that has nothing cached.
 */

const PARENT = 2048;
const CONTEXT = 2304;
const normal = tinyVocabulary().types.flatMap((type, id) => (type === TokenType.NORMAL ? [id] : []));
/** `n` deterministic ids; each `variant` differs from the first id on. */
const idsOf = (n: number, variant: number) => Array.from({ length: n }, (_, i) => normal[(i * 7919 + variant * 104729 + 17) % normal.length]!);

let models: Awaited<ReturnType<typeof modelDir>>;
let modelPath: string;
let engine: NodeLlamaEngine;
/** Nothing is ever shared here: one slot, and each prompt after a different one. */
let cold: NodeLlamaEngine;
let parentPrompt: number[];
let parent: DoneEvent;

beforeAll(async () => {
  models = await modelDir();
  modelPath = await models.model('fork.gguf', { ctx: 4096 });
  [engine, cold] = await Promise.all([cpuEngine(modelPath, { slots: 4, contextSize: CONTEXT }), cpuEngine(modelPath, { slots: 1, contextSize: CONTEXT })]);
  parentPrompt = [1, ...idsOf(PARENT - 1, 0)];
  parent = await generateAll(engine, { prompt: { tokens: parentPrompt }, maxTokens: 8, slot: 'parent' });
});
afterAll(async () => {
  await engine?.dispose();
  await cold?.dispose();
  await models?.cleanup();
});

/** The same request on the cold engine, after an unrelated prompt so that not even BOS is cached. */
async function unshared(prompt: number[], maxTokens: number): Promise<DoneEvent> {
  await generateAll(cold, { prompt: { tokens: idsOf(4, 99) }, maxTokens: 1 });
  const done = await generateAll(cold, { prompt: { tokens: prompt }, maxTokens });
  expect(done.stats.cachedTokens).toBe(0);
  return done;
}

/** What the parent's slot caches: its prompt and every generated token but the last (never evaluated). */
const parentCached = () => PARENT + parent.tokens.length - 1;
const forkOf = (variant: number) => [...parentPrompt, ...parent.tokens, ...idsOf(40, variant)];

describe('forks share their parent prefix KV', () => {
  it('a fork evaluates only its suffix, with the tokens of an unshared run', async () => {
    expect(parent.stats.cachedTokens).toBe(0);
    const prompt = forkOf(1);
    const fork = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 24, slot: 'fork' });
    expect(fork.stats.promptTokens).toBe(prompt.length);
    expect(fork.stats.cachedTokens).toBe(parentCached());
    expect(fork.stats.promptTokens - fork.stats.cachedTokens).toBe(prompt.length - parentCached());
    expect(fork.tokens).toEqual((await unshared(prompt, 24)).tokens);
    // Copied, not taken: the parent's slot still holds its whole conversation.
    const next = await generateAll(engine, { prompt: { tokens: [...parentPrompt, ...parent.tokens, ...idsOf(5, 2)] }, maxTokens: 4, slot: 'parent' });
    expect(next.stats.cachedTokens).toBe(parentCached());
  });

  it('two forks at once, while the parent generates for its own session, both reuse its prefix', async () => {
    const controller = new AbortController();
    let started!: () => void;
    const busy = new Promise<void>((resolve) => (started = resolve));
    // The parent's session goes on (a long generation); the forks start once it is decoding.
    const parentRun = generateAll(engine, { prompt: { tokens: [...parentPrompt, ...parent.tokens] }, maxTokens: 200, slot: 'parent', signal: controller.signal }, () => started());
    await busy;
    const prompts = [forkOf(3), forkOf(4)];
    const forks = await Promise.all(prompts.map((prompt, i) => generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 16, slot: `twin-${i}` })));
    controller.abort();
    // Cancelled, not finished: the parent's slot was busy for as long as the forks ran.
    expect((await parentRun).finishReason).toBe('cancelled');
    for (const [i, fork] of forks.entries()) {
      expect(fork.stats.cachedTokens).toBeGreaterThanOrEqual(parentCached());
      expect(fork.stats.cachedTokens).toBeLessThan(prompts[i]!.length);
      expect(fork.tokens).toEqual((await unshared(prompts[i]!, 16)).tokens);
    }
  });

  it('an unrelated prompt reuses nothing', async () => {
    const prompt = idsOf(PARENT, 7);
    const done = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 8, slot: 'stranger' });
    expect(done.stats.cachedTokens).toBe(0);
    expect(done.tokens).toEqual((await unshared(prompt, 8)).tokens);
  });

  it('a loaded KV state is a parent too: a fork on another slot copies it', async () => {
    const state = await engine.saveKv('parent');
    const other = await cpuEngine(modelPath, { slots: 2, contextSize: CONTEXT });
    try {
      await other.loadKv('loaded', state);
      const prompt = [...state.tokens, ...idsOf(30, 5)];
      const fork = await generateAll(other, { prompt: { tokens: prompt }, maxTokens: 12, slot: 'fork' });
      expect(fork.stats.cachedTokens).toBe(state.tokens.length);
      expect(fork.tokens).toEqual((await unshared(prompt, 12)).tokens);
    } finally {
      await other.dispose();
    }
  });
});
