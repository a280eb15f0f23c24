/**
 * The CPU-share cap (src/core/llm/cpu-share.ts) on a real engine (node-llama-cpp, tiny generated model): it never
 * changes what is generated; after each stretch of work it asks for a pause of work × (1/share − 1), carrying what
 * a timer fell short of into the next pause; the reported speeds are the capped ones (what a node's profile and the
 * placement policy then see); a change mid-generation takes effect at the next token; cancellation is not held up
 * by a pause; a share outside (0, 1] is refused. Time is virtual — every step of the engine's work costs a fixed
 * amount of it and a pause costs what the clock grants — so the arithmetic is checked exactly on a busy machine;
 * what the cap does to real speeds is measured by the bench.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cpuShare, withCpuShare, type PaceClock } from '../../../src/core/llm/cpu-share.ts';
import { generateAll } from '../../../src/core/llm/collect.ts';
import type { Engine, GenerateEvent } from '../../../src/core/llm/engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

/** Virtual work per engine step, ms. */
const WORK_MS = 2;

/**
 * A virtual clock over `engine`: each of its steps (as its consumer waits for one) advances the clock by WORK_MS,
 * and a pause advances it by what `grant` allows of the asked time (a whole-millisecond timer: floor). Every pause
 * asked for is recorded.
 */
function virtualTime(engine: Engine, grant: (ms: number) => number = Math.floor) {
  let now = 0;
  const asked: number[] = [];
  /** The engine's own done event, before the cap rewrites its stats. */
  const raw: GenerateEvent[] = [];
  const clock: PaceClock = {
    now: () => now,
    pause: async (ms) => {
      asked.push(ms);
      now += Math.max(0, grant(ms));
    },
  };
  const stepped: Engine = {
    info: engine.info,
    tokenize: (t, o) => engine.tokenize(t, o),
    detokenize: (ids) => engine.detokenize(ids),
    dispose: () => engine.dispose(),
    async *generate(request) {
      const it = engine.generate(request)[Symbol.asyncIterator]();
      for (;;) {
        const next = await it.next();
        now += WORK_MS;
        if (next.done) return;
        if (next.value.type === 'done') raw.push(next.value);
        yield next.value;
      }
    },
  };
  return { clock, asked, raw, engine: stepped };
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

  test('same tokens; each stretch of work is followed by a pause of 3× it at a quarter, what a timer falls short of carried on', async () => {
    const plain = await generateAll(engine, request);
    const time = virtualTime(engine);
    const capped = await generateAll(withCpuShare(time.engine, cpuShare(0.25), time.clock), request);
    expect(capped.tokens).toEqual(plain.tokens);
    // One pause per token; the first asks for exactly 3× the work, each later one for 3× plus what the last fell short of.
    expect(time.asked).toHaveLength(capped.tokens.length);
    expect(time.asked[0]).toBe(WORK_MS * 3);
    const granted = time.asked.map(Math.floor);
    for (let i = 1; i < time.asked.length; i++) expect(time.asked[i]).toBeCloseTo(WORK_MS * 3 + (time.asked[i - 1]! - granted[i - 1]!), 9);
    // Over the whole generation the pauses add up to 3× the work, within what one timer can owe.
    const paused = granted.reduce((a, b) => a + b, 0);
    const work = (capped.tokens.length + 1) * WORK_MS;
    expect(Math.abs(paused - 3 * (work - WORK_MS))).toBeLessThan(1);
  });

  test('the reported speeds are the capped ones: the pause after the first token counts as prefill', async () => {
    // A clock that grants every pause in full, so the stats move by exactly the first pause.
    const time = virtualTime(engine, (ms) => ms);
    const events: GenerateEvent[] = [];
    for await (const e of withCpuShare(time.engine, cpuShare(0.5), time.clock).generate(request)) events.push(e);
    const done = events.at(-1)!;
    const raw = time.raw[0]!;
    if (done.type !== 'done' || raw.type !== 'done') throw new Error('no done event');
    const first = time.asked[0]!;
    expect(first).toBe(WORK_MS);
    // The engine's own clock saw the pause after the first token as decode time; the cap moves it to the prefill.
    expect(done.stats.prefillMs).toBeCloseTo(raw.stats.prefillMs + first, 9);
    expect(done.stats.ttftMs).toBeCloseTo(raw.stats.ttftMs + first, 9);
    expect(done.stats.decodeMs).toBeCloseTo(Math.max(0, raw.stats.decodeMs - first), 9);
    expect(done.stats.decodeTps).toBeCloseTo((done.stats.completionTokens / done.stats.decodeMs) * 1000, 6);
    expect(done.stats.prefillTps).toBeCloseTo((raw.stats.prefillTps * raw.stats.prefillMs) / done.stats.prefillMs, 6);
  });

  test('a change mid-generation applies from the next token; cancelling is not held up by a pause', async () => {
    const share = cpuShare();
    const controller = new AbortController();
    let n = 0;
    // The third pause never ends by itself: the generation is cancelled while in it, and only the abort ends it.
    const asked: number[] = [];
    const clock: PaceClock = {
      now: () => n * WORK_MS,
      pause: (ms, signal) => {
        asked.push(ms);
        if (asked.length < 3 || signal?.aborted) return Promise.resolve();
        queueMicrotask(() => controller.abort());
        return new Promise((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
      },
    };
    const counting: Engine = {
      ...engine,
      info: engine.info,
      async *generate(req) {
        for await (const e of engine.generate(req)) {
          n++;
          yield e;
        }
      },
    };
    const events: GenerateEvent[] = [];
    for await (const e of withCpuShare(counting, share, clock).generate({ ...request, maxTokens: 400, signal: controller.signal })) {
      events.push(e);
      if (events.length === 10) share.set(0.02);
    }
    // Uncapped: no pause for the first ten tokens; from the next one on, 49× its work.
    expect(asked.length).toBeGreaterThanOrEqual(3);
    expect(asked[0]).toBe(WORK_MS * 49);
    expect(events.at(-1)).toMatchObject({ type: 'done', finishReason: 'cancelled' });
    expect(events.filter((e) => e.type === 'token').length).toBeLessThan(20);
  });

  test('a share outside (0, 1] is refused with a typed error', () => {
    for (const bad of [0, -0.5, 1.5, Number.NaN]) expect(() => cpuShare(bad)).toThrow(expect.objectContaining({ code: 'llm/bad-request' }));
    const share = cpuShare(0.5);
    expect(() => share.set(2)).toThrow(/fraction in \(0, 1\]/);
    expect(share.get()).toBe(0.5);
  });
});
