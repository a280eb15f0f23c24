/**
 * The CPU-share cap (src/core/llm/cpu-share.ts) on a real engine (node-llama-cpp, tiny generated model): it never
 * changes what is generated, its pauses really slow the generation by the share (the reported speeds are the
 * capped ones — what a node's profile and the placement policy then see), a change mid-generation takes effect at
 * the next token, cancellation is not delayed by a pause, and a share outside (0, 1] is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cpuShare, withCpuShare } from '../../../src/core/llm/cpu-share.ts';
import { generateAll } from '../../../src/core/llm/collect.ts';
import type { Engine, GenerateEvent } from '../../../src/core/llm/engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

/** `engine`, timing each of its steps as its consumer waits for them: the work the cap paces. */
function timed(engine: Engine): { engine: Engine; busyMs: number[] } {
  const busyMs: number[] = [];
  return {
    busyMs,
    engine: {
      info: engine.info,
      tokenize: (t, o) => engine.tokenize(t, o),
      detokenize: (ids) => engine.detokenize(ids),
      dispose: () => engine.dispose(),
      async *generate(request) {
        const it = engine.generate(request)[Symbol.asyncIterator]();
        for (;;) {
          const t0 = performance.now();
          const next = await it.next();
          busyMs.push(performance.now() - t0);
          if (next.done) return;
          yield next.value;
        }
      },
    },
  };
}

describe('cpu share', () => {
  let models: Awaited<ReturnType<typeof modelDir>>;
  let engine: Engine;

  beforeAll(async () => {
    models = await modelDir();
    engine = await cpuEngine(await models.model('tiny'));
  });
  afterAll(async () => {
    await engine?.dispose();
    await models?.cleanup();
  });

  const request = { prompt: { text: 'The harbour at dawn' }, maxTokens: 48, temperature: 0 };

  test('same tokens; the pauses slow it by the share and the reported speeds say so', async () => {
    const plain = await generateAll(engine, request);
    const inner = timed(engine);
    const t0 = performance.now();
    const capped = await generateAll(withCpuShare(inner.engine, cpuShare(0.25)), request);
    const wallMs = performance.now() - t0;
    expect(capped.tokens).toEqual(plain.tokens);
    // Every step's work is followed by a pause of 3× that work: the whole takes at least 4× the work.
    const workMs = inner.busyMs.reduce((a, b) => a + b, 0);
    expect(wallMs).toBeGreaterThanOrEqual(workMs * 4 * 0.95);
    // The reported decode speed is the capped one: at most a quarter of the speed of the work itself.
    const decodeWorkMs = inner.busyMs.slice(1, -1).reduce((a, b) => a + b, 0);
    expect(capped.stats.decodeTps).toBeLessThanOrEqual((capped.stats.completionTokens / decodeWorkMs) * 1000 * 0.25 * 1.1);
    expect(capped.stats.prefillMs).toBeGreaterThanOrEqual(inner.busyMs[0]! * 3 * 0.95);
  });

  test('a change mid-generation applies from the next token; cancelling is not held up by a pause', async () => {
    const share = cpuShare();
    const controller = new AbortController();
    const gaps: number[] = [];
    let last = performance.now();
    let n = 0;
    const events: GenerateEvent[] = [];
    for await (const e of withCpuShare(engine, share).generate({ ...request, maxTokens: 400, signal: controller.signal })) {
      events.push(e);
      const now = performance.now();
      gaps.push(now - last);
      last = now;
      if (++n === 10) share.set(0.02);
      if (n === 14) controller.abort();
    }
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: 'done', finishReason: 'cancelled' });
    // Uncapped tokens come back to back; at 2% every token is followed by a pause of 49× its work.
    const before = gaps.slice(2, 10).reduce((a, b) => a + b, 0) / 8;
    const after = gaps.slice(11, 14).reduce((a, b) => a + b, 0) / 3;
    expect(after).toBeGreaterThan(before * 5);
    expect(events.filter((e) => e.type === 'token').length).toBeLessThan(20);
  });

  test('a share outside (0, 1] is refused with a typed error', () => {
    for (const bad of [0, -0.5, 1.5, Number.NaN]) expect(() => cpuShare(bad)).toThrow(expect.objectContaining({ code: 'llm/bad-request' }));
    const share = cpuShare(0.5);
    expect(() => share.set(2)).toThrow(/fraction in \(0, 1\]/);
    expect(share.get()).toBe(0.5);
  });
});
