/**
 * The facts automatic placement and "Where it runs" both decide the next step with (src/browser/next-step.ts): this
 * device's speed is its newest generation here of the session's model — not a cloud worker's, not another model's —
 * and the decision takes this device's cached context into account.
 */
import { describe, expect, test } from 'vitest';
import { cloudMoveFor, decideNextStep, nextStep, thisDeviceNode } from '../../src/browser/next-step.ts';
import { measuredAcceptance, recordAcceptance } from '../../src/browser/speculative-acceptance.ts';
import { AcceptanceMeter, heldPrefixKeys, restoreNodeProfile } from '../../src/core/placement/index.ts';
import { generateSessionKey } from '../../src/core/snapshot/index.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { testLlm } from '../support/session-fixtures.ts';

const at = 1_700_000_000_000;
const generation = (id: string, model: string, tokens: number, generateMs: number): SessionEvent => ({
  type: 'generation',
  tokens: Array.from({ length: tokens }, (_, i) => i),
  text: 'x'.repeat(tokens),
  engine: { id, kind: id === 'node-llama-cpp' ? 'native' : 'wasm-cpu', model },
  timings: { promptMs: 5, generateMs },
  finish: 'stop',
  at,
});

async function session(...steps: SessionEvent[][]): Promise<Session> {
  const s = await Session.create(createMemoryStore(), { llm: testLlm, now: at });
  for (const events of steps) await s.append({ events: [{ type: 'user', text: 'hi', at }, ...events], now: at });
  return s;
}

describe('the next step', () => {
  test('nothing ran here: no speed', async () => {
    const s = await session([generation('node-llama-cpp', testLlm.model, 100, 50)]);
    expect((await nextStep(s, { replyTokens: 256, contextSize: 4096 })).decodeTps).toBeNull();
  });

  test("this device's speed is the newest generation here of the session's model, past a cloud reply after it", async () => {
    const s = await session([generation('wllama', testLlm.model, 50, 1000)], [generation('wllama', testLlm.model, 100, 1000)], [generation('wllama', 'another-model', 10, 1000)], [generation('node-llama-cpp', testLlm.model, 400, 100)]);
    const step = await nextStep(s, { replyTokens: 256, contextSize: 4096 });
    expect(step.decodeTps).toBe(100);
    expect(step.model).toBe(testLlm.model);
    expect(step.replyLimit).toBe(256);
    // The context: a system prompt's worth plus what was generated, within the context size.
    expect(step.promptTokens).toBe(512 + 50 + 100 + 10 + 400);
    expect((await nextStep(s, { replyTokens: 256, contextSize: 600 })).promptTokens).toBe(600);
  });

  test('the decision: a much faster worker takes the next step; one no faster leaves it here, the context being cached here', () => {
    // A free cloud worker of the same model a few milliseconds away, as the relay's list makes it (core/placement/fleet.ts).
    const worker = (decodeTps: number) => [
      restoreNodeProfile({ id: 'w1', name: 'embedded', kind: 'cloud', trust: 'own', models: { [testLlm.model]: { prefillTps: decodeTps * 10, decodeTps, measuredAt: at } }, memoryBytes: 2 ** 40, link: { rttMs: 5, bandwidthBps: 1e8 }, price: { promptPer1k: 0, outputPer1k: 0 }, queueWaitMs: 0, kvState: true }),
    ];
    const step = { model: testLlm.model, promptTokens: 2000, expectedOutputTokens: 256 };
    const prefs = { objective: 'fastest', privacy: 'any' } as const;
    const fast = decideNextStep(step, thisDeviceNode(testLlm.model, 10), worker(2000), prefs);
    expect(fast.move).toBe(true);
    expect(fast.nodeId).toBe('w1');
    const same = decideNextStep(step, thisDeviceNode(testLlm.model, 100), worker(100), prefs);
    expect(same.move).toBe(false);
    expect(same.nodeId).toBe('this-device');
  });

  test("the cloud move pins the cloud worker that holds the session's prefix, on its tokenizer only", async () => {
    const cloud = (id: string, extra: object = {}) => restoreNodeProfile({ id, name: id, kind: 'cloud', trust: 'own', models: { [testLlm.model]: { prefillTps: 200, decodeTps: 50, measuredAt: at } }, memoryBytes: 2 ** 40, link: { rttMs: 5, bandwidthBps: 1e8 }, price: { promptPer1k: 0, outputPer1k: 0 }, queueWaitMs: 0, kvState: true, ...extra });
    const keys = await heldPrefixKeys(generateSessionKey(), Array.from({ length: 1024 }, (_, i) => (i * 7) % 500));
    // Two of the user's own workers alike but for the prefix one holds; the user's own only, so one is pinned.
    const fleet = [cloud('a'), cloud('holder', { prefixes: keys, tokenizer: 'tok' })];
    const step = { model: testLlm.model, promptTokens: 1200, expectedOutputTokens: 64 };
    const prefs = { objective: 'fastest', privacy: 'my-devices' } as const;
    expect(cloudMoveFor('s', step, fleet, prefs)).toEqual({ node: 'a' });
    expect(cloudMoveFor('s', { ...step, prefix: { tokenizer: 'tok', keys } }, fleet, prefs)).toEqual({ node: 'holder' });
    expect(cloudMoveFor('s', { ...step, prefix: { tokenizer: 'another', keys } }, fleet, prefs)).toEqual({ node: 'a' });
  });

  test('a session running speculatively is weighed as it runs: a plain run here, barely faster, does not take it', () => {
    // A verifying worker as fast as this device: drafting here and verifying there is a little slower than a plain run here.
    const worker = restoreNodeProfile({ id: 'w1', name: 'embedded', kind: 'cloud', trust: 'own', models: { [testLlm.model]: { prefillTps: 2000, decodeTps: 20, measuredAt: at } }, memoryBytes: 2 ** 40, link: { rttMs: 5, bandwidthBps: 1e8 }, price: { promptPer1k: 0, outputPer1k: 0 }, queueWaitMs: 0, kvState: true, verifies: true });
    const step = { model: testLlm.model, promptTokens: 2000, expectedOutputTokens: 256 };
    const prefs = { objective: 'fastest', privacy: 'any' } as const;
    const plain = decideNextStep(step, thisDeviceNode(testLlm.model, 20), [worker], prefs);
    expect(plain).toMatchObject({ move: false, nodeId: 'this-device' });
    expect(plain.estimate.mode ?? 'run').toBe('run');
    const speculative = decideNextStep(step, thisDeviceNode(testLlm.model, 20), [worker], prefs, true);
    expect(speculative).toMatchObject({ move: false, estimate: { mode: 'speculative' }, reason: expect.stringMatching(/^Stayed on this device, verified by embedded/) });
  });

  test("running speculatively is estimated with this device's measured acceptance once a speculative generation measured it", async () => {
    const worker = restoreNodeProfile({ id: 'w1', name: 'embedded', kind: 'cloud', trust: 'own', models: { [testLlm.model]: { prefillTps: 2000, decodeTps: 20, measuredAt: at } }, memoryBytes: 2 ** 40, link: { rttMs: 5, bandwidthBps: 1e8 }, price: { promptPer1k: 0, outputPer1k: 0 }, queueWaitMs: 0, kvState: true, verifies: true });
    const prefs = { objective: 'fastest', privacy: 'any' } as const;
    const s = await session([generation('wllama', testLlm.model, 50, 1000)]);
    const speculativePlan = async () => {
      const step = await nextStep(s, { replyTokens: 256, contextSize: 4096 });
      const candidate = decideNextStep(step, thisDeviceNode(testLlm.model, step.decodeTps!), [worker], prefs).candidates.find((c) => c.mode === 'speculative');
      return { acceptance: step.acceptance, plan: candidate?.speculative };
    };
    // Nothing measured yet: the prior.
    expect(await speculativePlan()).toMatchObject({ acceptance: null, plan: { acceptance: 0.9 } });
    // A generation whose drafts were mostly refused: 4 of 40 drafted ids taken, 10 rounds each cut at a disagreement.
    recordAcceptance({ draftModel: testLlm.model, targetModel: testLlm.model, rounds: 10, drafted: 40, accepted: 4, rejected: 10 });
    const low = await speculativePlan();
    expect(low.acceptance).toBeCloseTo(4 / 14);
    expect(low.plan?.acceptance).toBeCloseTo(4 / 14);
    // Drafting for another model measures another pair.
    expect(measuredAcceptance(testLlm.model, 'another-model')).toBeNull();
  });

  test('the running acceptance weighs newer generations more, survives storage, and ignores generations that drafted nothing', () => {
    const meter = new AcceptanceMeter();
    const tally = (accepted: number, rejected: number) => ({ draftModel: 'd', targetModel: 't', rounds: rejected, drafted: accepted + rejected, accepted, rejected });
    meter.record(tally(0, 0));
    expect(meter.acceptance('d', 't')).toBeNull();
    meter.record(tally(9, 1));
    expect(meter.acceptance('d', 't')).toBeCloseTo(0.9);
    meter.record(tally(1, 9));
    // (9·0.8 + 1) / (10·0.8 + 10): the newer, worse generation counts more.
    expect(meter.acceptance('d', 't')).toBeCloseTo(8.2 / 18);
    expect(AcceptanceMeter.restore(JSON.parse(JSON.stringify(meter))).acceptance('d', 't')).toBeCloseTo(8.2 / 18);
    expect(AcceptanceMeter.restore({ x: { agree: 5, seen: 2 }, y: 'no' }).toJSON()).toEqual({});
  });
});
