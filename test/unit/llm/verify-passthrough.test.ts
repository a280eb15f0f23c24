/**
 * The engine wrappers pass the optional `verify` (speculative decoding's target side) through: the kept-engine handle
 * (keptHandle), the CPU-share cap (withCpuShare, which paces a verification like any other stretch of work) and the
 * fallback engine. Each gives the wrapped engine's own verdict on a real engine (node-llama-cpp, tiny generated
 * model), and none claims a `verify` the wrapped engine does not have.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../../src/core/errors.ts';
import { cpuShare, withCpuShare, type PaceClock } from '../../../src/core/llm/cpu-share.ts';
import type { Engine, VerifyRequest } from '../../../src/core/llm/engine.ts';
import { openWithFallback } from '../../../src/core/llm/fallback-engine.ts';
import { keptHandle } from '../../../src/core/llm/kept-engine.ts';
import { generateAll } from '../../../src/core/llm/collect.ts';
import { failing, gpuLost } from '../../support/failing-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

describe('verify through the engine wrappers', () => {
  let models: Awaited<ReturnType<typeof modelDir>>;
  let engine: Engine;
  let request: VerifyRequest;
  /** The same engine without `verify` (as web-llm and wllama are). */
  let plain: Engine;

  beforeAll(async () => {
    models = await modelDir();
    engine = await cpuEngine(await models.model('tiny.gguf', { seed: 3 }), { slots: 2 });
    const context = [1, ...(await engine.tokenize('The harbour at dawn'))];
    // A draft of the engine's own greedy continuation, with its last id changed: verify must accept all but that.
    const greedy = (await generateAll(engine, { prompt: { tokens: context }, maxTokens: 4, slot: 'greedy' })).tokens;
    request = { context, draft: [...greedy.slice(0, 3), greedy[3]! > 4 ? greedy[3]! - 1 : greedy[3]! + 1] };
    plain = failing(engine, Infinity, gpuLost);
  });
  afterAll(async () => {
    await engine?.dispose();
    await models?.cleanup();
  });

  const own = () => engine.verify!({ ...request, slot: 'own' });

  it('the kept handle verifies as the engine does, and has no verify over an engine without one', async () => {
    const expected = await own();
    const kept = keptHandle(engine);
    expect(kept.verify).toBeTypeOf('function');
    expect((await kept.verify!({ ...request, slot: 'kept' })).argmax).toEqual(expected.argmax);
    expect(expected.argmax.slice(0, 3)).toEqual(request.draft.slice(0, 3));
    expect(expected.argmax[3]).not.toBe(request.draft[3]);
    expect(keptHandle(plain).verify).toBeUndefined();
  });

  it('the CPU-share cap verifies as the engine does and pauses after it for its share', async () => {
    const expected = await own();
    let now = 0;
    const asked: number[] = [];
    // Virtual time: the verification is 10 ms of work, a pause takes what it asks.
    const clock: PaceClock = { now: () => now, pause: async (ms) => void asked.push(ms) };
    const timed: Engine = { ...plain, verify: async (r) => { const out = await engine.verify!(r); now += 10; return out; } };
    const capped = withCpuShare(timed, cpuShare(0.25), clock);
    expect((await capped.verify!({ ...request, slot: 'capped' })).argmax).toEqual(expected.argmax);
    expect(asked).toEqual([30]);
    expect(withCpuShare(timed, cpuShare(1), clock).verify).toBeTypeOf('function');
    expect(withCpuShare(plain, cpuShare(0.5), clock).verify).toBeUndefined();
  });

  it('the fallback engine verifies on the active engine, and says so when the one it switched to cannot', async () => {
    const expected = await own();
    const primary: Engine = { ...failing(engine, 2, gpuLost, { id: 'web-llm' }), verify: (r) => engine.verify!(r) };
    const wrapped = await openWithFallback(async () => primary, { open: async () => plain });
    expect((await wrapped.verify!({ ...request, slot: 'fallback' })).argmax).toEqual(expected.argmax);
    expect((await openWithFallback(async () => plain, { open: async () => plain })).verify).toBeUndefined();
    // A lost device mid-reply switches to the fallback, which cannot verify.
    await generateAll(wrapped, { prompt: { tokens: request.context }, maxTokens: 8, slot: 'switch' });
    expect(wrapped.info.id).toBe('node-llama-cpp');
    const refused = await wrapped.verify!(request).then(() => undefined, (e: unknown) => e);
    expect(isFerryError(refused) && refused.code).toBe('llm/unsupported');
  });
});
