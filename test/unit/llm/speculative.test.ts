import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptDraft, DraftLength, engineVerifier, generateAll, preparePrompt, resumeRequest, speculativeDecode, SpeculativeEngine } from '../../../src/core/llm/index.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';
import { decideNextStep, thisDeviceNode } from '../../../src/browser/next-step.ts';
import { measuredAcceptance, recordAcceptance } from '../../../src/browser/speculative-acceptance.ts';
import { restoreNodeProfile } from '../../../src/core/placement/index.ts';

/**
 * Speculative decoding on real engines: a generated target model, a draft that agrees often (the same weights in
 * 4-bit) and one that agrees rarely (other weights). Whatever the draft proposes, the output is the target's own
 * greedy output; a draft that agrees often takes fewer target passes than tokens.
 */

const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea', 'hi'];
const MAX = 40;

let models: Awaited<ReturnType<typeof modelDir>>;
let target: NodeLlamaEngine;
let often: NodeLlamaEngine;
let rarely: NodeLlamaEngine;

beforeAll(async () => {
  models = await modelDir();
  const [t, o, r] = await Promise.all([models.model('target.gguf'), models.model('often.gguf', { type: 'q4_0' }), models.model('rarely.gguf', { seed: 2 })]);
  [target, often, rarely] = await Promise.all([cpuEngine(t, { slots: 2 }), cpuEngine(o, { slots: 1 }), cpuEngine(r, { slots: 1 })]);
});
afterAll(async () => {
  await Promise.all([target?.dispose(), often?.dispose(), rarely?.dispose()]);
  await models?.cleanup();
});

async function promptOf(text: string): Promise<number[]> {
  return [1, ...(await target.tokenize(text))];
}

async function cloudOnly(prompt: number[]): Promise<readonly number[]> {
  return (await generateAll(target, { prompt: { tokens: prompt }, maxTokens: MAX, slot: 'alone' })).tokens;
}

describe('speculative decoding', () => {
  for (const [name, draft, agreement] of [['often', () => often, 'often'], ['rarely', () => rarely, 'rarely']] as const) {
    it(`gives the target's greedy tokens with a draft that agrees ${agreement}`, async () => {
      let drafted = 0;
      let accepted = 0;
      for (const text of PROMPTS) {
        const prompt = await promptOf(text);
        const expected = await cloudOnly(prompt);
        const streamed: number[] = [];
        const result = await speculativeDecode({ draft: draft(), verifier: engineVerifier(target, prompt, 'spec'), prompt, maxTokens: MAX, slot: 'draft', draftLength: new DraftLength({ fixed: 4 }), onTokens: (ids) => streamed.push(...ids) });
        expect(result.tokens).toEqual(expected);
        expect(streamed.slice(0, MAX)).toEqual(expected);
        expect(result.finishReason).toBe(expected.length < MAX ? 'stop' : 'length');
        drafted += result.drafted;
        accepted += result.accepted;
        if (name === 'often') expect(result.rounds).toBeLessThan(result.tokens.length);
      }
      // The two drafts are what their names say (deterministic: greedy on fixed weights).
      if (name === 'often') expect(accepted / drafted).toBeGreaterThan(0.35);
      else expect(accepted / drafted).toBeLessThan(0.05);
    });
  }

  it('verify returns the greedy pick at every position, and only the uncached part is evaluated', async () => {
    const prompt = await promptOf('The quick brown fox');
    const expected = await cloudOnly(prompt);
    const first = await target.verify({ context: prompt, draft: expected.slice(0, 5), slot: 'v' });
    expect(first.argmax).toEqual(expected.slice(0, 6));
    expect(first.cachedTokens).toBeLessThan(prompt.length);
    // A wrong draft: picks follow the draft's tokens, so only the first one is the target's continuation.
    const wrong = expected.slice(0, 3).map((t) => (t === 300 ? 301 : 300));
    const second = await target.verify({ context: [...prompt, ...expected.slice(0, 6)], draft: wrong, slot: 'v' });
    expect(second.argmax[0]).toBe(expected[6]);
    expect(second.argmax).toHaveLength(4);
    expect(second.cachedTokens).toBe(prompt.length + 5);
  });

  it('reports how its drafts fared, and placement estimates running speculatively with that measured acceptance', async () => {
    const engine = new SpeculativeEngine({ draft: rarely, verifiers: async (prompt) => engineVerifier(target, prompt, 'spec-tally'), target: target.info, draftLength: { fixed: 4 } });
    const done = await generateAll(engine, { prompt: { tokens: await promptOf('Write a story about the sea') }, maxTokens: MAX, slot: 'draft' });
    const tally = done.speculative!;
    expect(tally).toMatchObject({ draftModel: rarely.info.model, targetModel: target.info.model });
    // Every round gives its accepted ids and the target's own next one (the last may end the generation instead).
    expect(done.tokens.length - tally.accepted - tally.rounds).toBeGreaterThanOrEqual(-1);
    expect(done.tokens.length - tally.accepted - tally.rounds).toBeLessThanOrEqual(0);
    expect(tally.drafted).toBeGreaterThanOrEqual(tally.accepted + tally.rejected);
    expect(tally.rejected).toBeGreaterThan(0);
    // This device counts it; placement's speculative estimate then takes the measured acceptance, not its prior.
    expect(measuredAcceptance(rarely.info.model, target.info.model)).toBeNull();
    recordAcceptance(tally);
    const measured = measuredAcceptance(rarely.info.model, target.info.model)!;
    expect(measured).toBeCloseTo(tally.accepted / (tally.accepted + tally.rejected));
    expect(measured).toBeLessThan(0.5);
    const model = target.info.model;
    const verifier = restoreNodeProfile({ id: 'w1', name: 'embedded', kind: 'cloud', trust: 'own', models: { [model]: { prefillTps: 2000, decodeTps: 20, measuredAt: Date.now() } }, memoryBytes: 2 ** 40, link: { rttMs: 5, bandwidthBps: 1e8 }, price: { promptPer1k: 0, outputPer1k: 0 }, queueWaitMs: 0, kvState: true, verifies: true });
    const step = { model, promptTokens: 600, expectedOutputTokens: 256, acceptance: measured };
    const estimate = decideNextStep(step, thisDeviceNode(model, 20), [verifier], { objective: 'fastest', privacy: 'any' }).candidates.find((c) => c.mode === 'speculative');
    expect(estimate?.speculative?.acceptance).toBe(measured);
  });

  it('behind the Engine interface, gives the target\'s tokens and text, stops where it does, and a run cut midway resumes exactly on the target', async () => {
    const engine = new SpeculativeEngine({ draft: often, verifiers: async (prompt) => engineVerifier(target, prompt, 'spec-engine'), target: target.info });
    const messages = [{ role: 'user' as const, content: 'Tell me about the ferry across the river' }];
    const alone = await generateAll(target, { prompt: { messages }, maxTokens: MAX, slot: 'alone' });
    const spec = await generateAll(engine, { prompt: { messages }, maxTokens: MAX, slot: 'draft' });
    expect(spec.tokens).toEqual(alone.tokens);
    expect(spec.text).toEqual(alone.text);
    expect(spec.finishReason).toBe(alone.finishReason);
    // A stop sequence from the middle of the text ends both at the same place.
    const stop = alone.text.slice(Math.floor(alone.text.length / 2), Math.floor(alone.text.length / 2) + 3);
    const [stoppedAlone, stoppedSpec] = [await generateAll(target, { prompt: { messages }, maxTokens: MAX, stop: [stop], slot: 'alone' }), await generateAll(engine, { prompt: { messages }, maxTokens: MAX, stop: [stop], slot: 'draft' })];
    expect(stoppedSpec.text).toEqual(stoppedAlone.text);
    expect(stoppedSpec.finishReason).toBe('stop');
    // Cut after 10 tokens (the session moves), continued by the target alone from the ids so far.
    const controller = new AbortController();
    let seen = 0;
    const cut = await generateAll(engine, { prompt: { messages }, maxTokens: MAX, slot: 'draft', signal: controller.signal }, () => {
      if (++seen === 10) controller.abort();
    });
    expect(cut.finishReason).toBe('cancelled');
    expect(cut.tokens.length).toBeLessThan(MAX);
    const prompt = await preparePrompt(target, { messages });
    const plan = await resumeRequest(target, {
      prompt: { tokenizerId: target.info.tokenizerId, tokens: prompt, text: '' },
      generated: { tokenizerId: target.info.tokenizerId, tokens: cut.tokens, text: cut.text },
      request: { maxTokens: MAX },
    });
    const rest = await generateAll(target, { ...plan.request, slot: 'resumed' });
    expect([...cut.tokens, ...rest.tokens]).toEqual(alone.tokens);
  });

  it('accepts the longest agreeing prefix plus the target\'s next token', () => {
    expect(acceptDraft([5, 6, 7], [5, 6, 9, 4])).toEqual({ accepted: 2, next: 9 });
    expect(acceptDraft([5, 6, 7], [5, 6, 7, 4])).toEqual({ accepted: 3, next: 4 });
    expect(acceptDraft([], [8])).toEqual({ accepted: 0, next: 8 });
    expect(acceptDraft([5], [5, null])).toEqual({ accepted: 1, next: null });
    expect(() => acceptDraft([5], [5])).toThrow(expect.objectContaining({ code: 'llm/bad-verify' }));
  });

  it('drafts longer when drafts are accepted and round trips cost more, shorter when they are rejected', () => {
    const agreeing = new DraftLength();
    for (let i = 0; i < 10; i++) agreeing.record({ drafted: agreeing.next, accepted: agreeing.next, draftMs: agreeing.next * 1, verifyMs: 80 });
    const agreeingFar = agreeing.next;
    // Three of four accepted: worth a long draft across a long round trip, a short one across a short one.
    const half = (k: number) => Math.floor((k * 3) / 4);
    const far = new DraftLength();
    for (let i = 0; i < 10; i++) far.record({ drafted: far.next, accepted: half(far.next), draftMs: far.next * 1, verifyMs: 80 });
    const near = new DraftLength();
    for (let i = 0; i < 10; i++) near.record({ drafted: near.next, accepted: half(near.next), draftMs: near.next * 1, verifyMs: 2 });
    expect(near.next).toBeLessThan(far.next);
    const rejecting = new DraftLength();
    for (let i = 0; i < 10; i++) rejecting.record({ drafted: rejecting.next, accepted: 0, draftMs: rejecting.next * 1, verifyMs: 80 });
    expect(agreeingFar).toBe(16);
    expect(rejecting.next).toBe(1);
    expect(rejecting.acceptance).toBeLessThan(0.1);
    const fixed = new DraftLength({ fixed: 6 });
    fixed.record({ drafted: 6, accepted: 0, draftMs: 6, verifyMs: 80 });
    expect(fixed.next).toBe(6);
    expect(() => new DraftLength({ min: 5, max: 2 })).toThrow(expect.objectContaining({ code: 'llm/bad-option' }));
  });

  it('with a latency target, drafts only as far as the target needs, and longer as the rounds slow down', () => {
    // Three of four accepted, 1 ms a drafted id: the fastest k across a 20 ms round is long.
    const half = (k: number) => Math.floor((k * 3) / 4);
    const run = (length: DraftLength, verifyMs: number) => {
      for (let i = 0; i < 10; i++) length.record({ drafted: length.next, accepted: half(length.next), draftMs: length.next * 1, verifyMs });
      return length.next;
    };
    const fastest = run(new DraftLength(), 20);
    const light = run(new DraftLength({ targetMsPerToken: 15 }), 20);
    expect(light).toBeLessThan(fastest);
    // A loaded server (40 ms rounds): more ids a round to stay within 15 ms a token.
    expect(run(new DraftLength({ targetMsPerToken: 15 }), 40)).toBeGreaterThan(light);
    // Out of reach: the fastest k, as without a target.
    expect(run(new DraftLength({ targetMsPerToken: 1 }), 20)).toBe(fastest);
    expect(() => new DraftLength({ targetMsPerToken: 0 })).toThrow(expect.objectContaining({ code: 'llm/bad-option' }));
  });
});
