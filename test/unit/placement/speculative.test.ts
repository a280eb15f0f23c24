import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, tokensPerRound, type NodeProfile } from '../../../src/core/placement/index.ts';
import { MODEL, NOW, anyFastest, cloud, codeOf, node, phone, step } from './fixtures.ts';

/** The model the phone drafts with: a small one of the same family. */
const DRAFT = 'llama-3.2-1b-q4';
/** The phone cannot run the step's model itself; it drafts with the small one at 40 tok/s. */
const drafter = (over: Partial<NodeProfile> = {}) => phone({ models: { [DRAFT]: { prefillTps: 400, decodeTps: 40, measuredAt: NOW } }, ...over });
/** A cloud worker that verifies, busy (8 tok/s per sequence) but close (30 ms round trip). */
const busyCloud = (over: Partial<NodeProfile> & { prefill?: number; decode?: number } = {}) => cloud({ prefill: 2000, decode: 8, link: { rttMs: 30, bandwidthBps: 10e6 }, verifies: true, ...over });
const spec = { draftModel: DRAFT, acceptance: 0.8 };

describe('placement: the speculative run (drafted here, verified there)', () => {
  it('is chosen when its estimate beats running on the verifier alone, and the reason says how it runs', () => {
    const d = decide(step({ speculative: spec }), [drafter(), busyCloud()], anyFastest, 'phone');
    expect(d.estimate.mode).toBe('speculative');
    expect(d.nodeId).toBe('cloud');
    expect(d.move).toBe(true);
    expect(d.estimate.name).toBe('phone, verified by cloud-a100');
    const alone = d.candidates.find((c) => c.nodeId === 'cloud' && !c.mode)!;
    expect(d.estimate.totalMs).toBeLessThan(alone.totalMs);
    const plan = d.estimate.speculative!;
    expect(plan.draftNodeId).toBe('phone');
    expect(plan.tokensPerRound).toBeCloseTo(tokensPerRound(plan.draftTokens, 0.8));
    expect(d.reason).toMatch(/^Runs on phone, verified by cloud-a100: \d+ s vs \d+ s and \$[\d.]+ on cloud-a100 for 500 output tokens.*drafts \d+ tokens a round at 40 tok\/s.*80% acceptance; only token ids leave the device/);
    // It is billed for the prompt, every drafted id and the output, on the verifier's price.
    expect(d.estimate.costUsd).toBeGreaterThan(alone.costUsd);
  });

  it('is not chosen when running on the node outright is faster, but is still estimated', () => {
    const d = decide(step({ speculative: spec }), [drafter(), busyCloud({ decode: 150, prefill: 8000 })], anyFastest);
    expect(d.estimate.mode).toBeUndefined();
    const speculative = d.candidates.find((c) => c.mode === 'speculative')!;
    expect(speculative.allowed).toBe(true);
    expect(speculative.totalMs).toBeGreaterThan(d.estimate.totalMs);
  });

  it('a low acceptance rate makes it lose to the run it would speed up', () => {
    const d = decide(step({ speculative: { ...spec, acceptance: 0.02 } }), [drafter(), busyCloud()], anyFastest);
    expect(d.estimate.mode).toBeUndefined();
    expect(d.nodeId).toBe('cloud');
  });

  it('is never chosen for a sampled step, whatever the speeds (property), and says why', () => {
    const speed = fc.double({ min: 0.1, max: 1e5, noNaN: true });
    fc.assert(fc.property(speed, speed, speed, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 500, noNaN: true }), (draftTps, verifyTps, prefill, acceptance, rttMs) => {
      const nodes = [drafter({ models: { [DRAFT]: { prefillTps: prefill, decodeTps: draftTps, measuredAt: NOW } } }), busyCloud({ decode: verifyTps, link: { rttMs, bandwidthBps: 1e7 } })];
      const d = decide(step({ sampled: true, speculative: { draftModel: DRAFT, acceptance } }), nodes, anyFastest, 'phone');
      expect(d.estimate.mode).toBeUndefined();
      expect(d.candidates.find((c) => c.mode === 'speculative')).toMatchObject({ allowed: false, excluded: expect.stringMatching(/samples.*greedy tokens only/) });
    }));
  });

  it('sends ids only where privacy lets the session go', () => {
    const d = decide(step({ speculative: spec }), [drafter({ models: { [DRAFT]: { prefillTps: 400, decodeTps: 40, measuredAt: NOW }, [MODEL]: { prefillTps: 30, decodeTps: 5, measuredAt: NOW } } }), busyCloud()], { objective: 'fastest', privacy: 'my-devices' });
    expect(d.nodeId).toBe('phone');
    expect(d.candidates.find((c) => c.mode === 'speculative')).toMatchObject({ allowed: false, excluded: 'privacy: your devices only' });
  });

  it('needs a drafting device, a node that verifies, and a draft speed', () => {
    const modes = (nodes: NodeProfile[], s = step({ speculative: spec })) => decide(s, nodes, anyFastest).candidates.map((c) => c.mode ?? 'run');
    expect(modes([drafter(), busyCloud()], step())).toEqual(['run', 'run']);
    expect(modes([drafter(), busyCloud({ verifies: false })])).toEqual(['run', 'run']);
    expect(modes([node('laptop', { kind: 'my-device', trust: 'own' }), busyCloud()])).toEqual(['run', 'run']);
    const noDraft = decide(step({ speculative: { acceptance: 0.8 } }), [drafter(), busyCloud()], anyFastest);
    expect(noDraft.candidates.find((c) => c.mode === 'speculative')).toMatchObject({ allowed: false, excluded: 'this device has no measured speed for its draft model' });
  });

  it('keeps a speculative session as it runs unless a change clearly pays (hysteresis), and a pin means a plain run', () => {
    // Speculative now; running on the cloud alone would be a little faster, within the margin.
    const nodes = [drafter(), busyCloud({ decode: 10 })];
    const half = { ...spec, acceptance: 0.5 };
    const current = decide(step({ speculative: half }), nodes, { ...anyFastest, hysteresis: 0 });
    const alone = current.candidates.find((c) => !c.mode && c.nodeId === 'cloud')!;
    const speculative = current.candidates.find((c) => c.mode === 'speculative')!;
    expect(alone.totalMs).toBeLessThan(speculative.totalMs);
    expect(alone.totalMs).toBeGreaterThan(speculative.totalMs * 0.8);
    expect([current.nodeId, current.estimate.mode]).toEqual(['cloud', undefined]);
    const kept = decide(step({ speculative: half }), nodes, anyFastest, 'cloud', 'speculative');
    expect(kept).toMatchObject({ move: false, estimate: { mode: 'speculative' } });
    expect(kept.reason).toMatch(/^Stayed on phone, verified by cloud-a100: cloud-a100 would be/);
    const pinned = decide(step({ speculative: half }), nodes, { ...anyFastest, pin: 'cloud' }, 'cloud', 'speculative');
    expect(pinned).toMatchObject({ move: true, estimate: { nodeId: 'cloud' } });
    expect(pinned.estimate.mode).toBeUndefined();
  });

  it('expects 1 token a round at acceptance 0 and k + 1 at certainty', () => {
    expect(tokensPerRound(4, 0)).toBe(1);
    expect(tokensPerRound(4, 1)).toBeCloseTo(5, 1);
    expect(tokensPerRound(4, 0.5)).toBeCloseTo(1.9375);
  });

  it('refuses an acceptance rate outside 0..1', () => {
    expect(codeOf(() => decide(step({ speculative: { acceptance: 1.5 } }), [drafter(), busyCloud()], anyFastest))).toBe('placement/bad-step');
  });
});
