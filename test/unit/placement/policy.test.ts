import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../../src/core/errors.ts';
import {
  decide,
  isProfileStale,
  redecideMidGeneration,
  restoreNodeProfile,
  shouldMigrate,
  staleNodes,
  type NodeProfile,
  type PlacementPrefs,
  type Privacy,
} from '../../../src/core/placement/index.ts';
import { MODEL, NOW, anyFastest, cloud, codeOf, laptop, node, phone, step } from './fixtures.ts';

describe('placement policy: privacy', () => {
  it('never places a private session off the device, whatever the speeds (property)', () => {
    const speed = fc.double({ min: 0.1, max: 1e6, noNaN: true });
    const nodeArb = fc.record({
      kind: fc.constantFrom('my-device' as const, 'cloud' as const),
      trust: fc.constantFrom('own' as const, 'third-party' as const),
      prefill: speed,
      decode: speed,
      rtt: fc.double({ min: 0, max: 1000, noNaN: true }),
      price: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    fc.assert(fc.property(
      fc.array(nodeArb, { maxLength: 6 }), speed, speed,
      fc.constantFrom<Privacy>('this-device', 'my-devices'),
      fc.constantFrom('fastest' as const, 'cheapest' as const, 'balanced' as const),
      fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 10_000 }),
      fc.option(fc.constantFrom('here', 'n0', 'n1'), { nil: undefined }),
      (others, hp, hd, privacy, objective, promptTokens, expectedOutputTokens, current) => {
        const nodes: NodeProfile[] = [
          phone({ id: 'here', prefill: hp, decode: hd }),
          ...others.map((o, i) => node(`n${i}`, { kind: o.kind, trust: o.trust, prefill: o.prefill, decode: o.decode, link: { rttMs: o.rtt, bandwidthBps: 1e9 }, price: { promptPer1k: o.price, outputPer1k: o.price } })),
        ];
        const d = decide(step({ promptTokens, expectedOutputTokens, cachedTokens: { n0: promptTokens } }), nodes, { objective, privacy, hysteresis: 0 }, current);
        const chosen = nodes.find((n) => n.id === d.nodeId)!;
        if (privacy === 'this-device') expect(chosen.kind).toBe('this-device');
        else expect(chosen.kind !== 'cloud' && chosen.trust === 'own').toBe(true);
      },
    ), { numRuns: 300 });
  });

  it('my-devices allows a paired laptop but not the cloud, and says so', () => {
    const d = decide(step({ expectedOutputTokens: 2000 }), [phone(), laptop(), cloud()], { objective: 'fastest', privacy: 'my-devices' }, 'phone');
    expect(d.nodeId).toBe('laptop');
    expect(d.candidates.find((c) => c.nodeId === 'cloud')!.excluded).toMatch(/privacy/);
    expect(d.reason).toMatch(/your devices only/);
  });

  it('a pin that breaks the privacy setting is refused with a typed error', () => {
    expect(codeOf(() => decide(step(), [phone(), cloud()], { objective: 'fastest', privacy: 'this-device', pin: 'cloud' }))).toBe('placement/pin-forbidden');
  });
});

describe('placement policy: objective, budget, pin', () => {
  it('fastest moves a long generation to the cloud and the reason carries the numbers', () => {
    const d = decide(step({ promptTokens: 2000, expectedOutputTokens: 2000, cachedTokens: { phone: 2000 } }), [phone(), cloud()], anyFastest, 'phone');
    expect(d.nodeId).toBe('cloud');
    expect(d.move).toBe(true);
    const phoneSecs = Math.round(d.candidates.find((c) => c.nodeId === 'phone')!.totalMs / 1000);
    expect(d.reason).toMatch(/^Moved to cloud-a100: /);
    expect(d.reason).toContain(`vs ${phoneSecs} s on phone`);
    expect(d.reason).toContain('2,000 output tokens');
    expect(d.reason).toMatch(/costs \$0\.000\d+/);
  });

  it('cheapest keeps work on free own devices', () => {
    const d = decide(step(), [phone(), laptop(), cloud()], { objective: 'cheapest', privacy: 'any' });
    expect(['phone', 'laptop']).toContain(d.nodeId);
    expect(d.estimate.costUsd).toBe(0);
    expect(d.reason).toMatch(/cheapest/);
  });

  it('respects the budget: an over-budget node is excluded, and the reason says it is within budget', () => {
    const pricey = cloud({ id: 'pricey', name: 'pricey', decode: 1000, price: { promptPer1k: 1, outputPer1k: 1 } });
    const d = decide(step(), [phone(), cloud(), pricey], { objective: 'fastest', privacy: 'any', budgetUsd: 0.01 });
    expect(d.nodeId).toBe('cloud');
    expect(d.estimate.costUsd).toBeLessThanOrEqual(0.01);
    expect(d.candidates.find((c) => c.nodeId === 'pricey')!.excluded).toMatch(/over the \$0\.01 budget/);
    expect(d.reason).toMatch(/within the \$0\.01 budget/);
  });

  it('budget property: the chosen cost never exceeds the budget', () => {
    fc.assert(fc.property(fc.double({ min: 0, max: 0.01, noNaN: true }), fc.double({ min: 0, max: 0.01, noNaN: true }), fc.integer({ min: 0, max: 50_000 }), (budget, price, tokens) => {
      const nodes = [phone(), cloud({ price: { promptPer1k: price, outputPer1k: price } })];
      const d = decide(step({ promptTokens: tokens }), nodes, { objective: 'fastest', privacy: 'any', budgetUsd: budget });
      expect(d.estimate.costUsd).toBeLessThanOrEqual(budget);
    }));
  });

  it('no node fits: placement/no-node with every exclusion in the message', () => {
    let err: unknown;
    try {
      decide(step(), [cloud({ price: { promptPer1k: 1, outputPer1k: 1 } })], { objective: 'fastest', privacy: 'any', budgetUsd: 0.001 });
    } catch (e) {
      err = e;
    }
    expect(isFerryError(err, 'placement/no-node')).toBe(true);
    expect((err as Error).message).toMatch(/cloud-a100: costs \$[\d.]+, over the \$0\.001 budget/);
    expect((err as Error).message).toMatch(/raise the budget/);
    // A budget that rules nothing out is not offered as the way out.
    try {
      decide(step(), [cloud()], { objective: 'fastest', privacy: 'my-devices', budgetUsd: 0 });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/privacy: your devices only/);
    expect((err as Error).message).not.toMatch(/budget/);
  });

  it('a pin wins over a faster node, and an unknown pin is a typed error', () => {
    const d = decide(step({ expectedOutputTokens: 3000 }), [phone(), cloud()], { objective: 'fastest', privacy: 'any', pin: 'phone' }, 'cloud');
    expect(d.nodeId).toBe('phone');
    expect(d.reason).toMatch(/pinned/);
    expect(codeOf(() => decide(step(), [phone()], { objective: 'fastest', privacy: 'any', pin: 'gone' }))).toBe('placement/pin-unavailable');
  });

  it('avoids an unplugged low-battery phone unless nothing else can run the step', () => {
    const flat = phone({ battery: { level: 0.1, charging: false } });
    const d = decide(step({ expectedOutputTokens: 50 }), [flat, laptop({ prefill: 20, decode: 2 })], { objective: 'fastest', privacy: 'my-devices' });
    expect(d.nodeId).toBe('laptop');
    expect(d.reason).toMatch(/skipped phone: battery at 10% and unplugged/);
    const alone = decide(step(), [flat], { objective: 'fastest', privacy: 'this-device' });
    expect(alone.nodeId).toBe('phone');
    expect(alone.reason).toMatch(/used despite battery/);
    const plugged = decide(step({ expectedOutputTokens: 50 }), [phone({ battery: { level: 0.1, charging: true } }), laptop({ prefill: 20, decode: 2 })], { objective: 'fastest', privacy: 'my-devices' });
    expect(plugged.nodeId).toBe('phone');
  });

  it('excludes nodes without the model or without the memory', () => {
    const d = decide(step({ memoryBytes: 10 * 2 ** 30 }), [phone(), laptop({ models: {} }), cloud()], { objective: 'fastest', privacy: 'any' });
    expect(d.nodeId).toBe('cloud');
    expect(d.candidates.find((c) => c.nodeId === 'phone')!.excluded).toMatch(/needs 10\.0 GiB, has 8\.0 GiB/);
    expect(d.candidates.find((c) => c.nodeId === 'laptop')!.excluded).toMatch(/no measured speed/);
  });
});

describe('placement policy: hysteresis', () => {
  it('does not ping-pong over alternating small advantages', () => {
    const prefs: PlacementPrefs = { objective: 'fastest', privacy: 'any' };
    let at = 'a';
    let moves = 0;
    for (let i = 0; i < 20; i++) {
      // Each round the other node looks 10% faster.
      const fastA = i % 2 === 1;
      const nodes = [node('a', { decode: fastA ? 11 : 10 }), node('b', { decode: fastA ? 10 : 11 })];
      const d = decide(step({ cachedTokens: { a: 2000, b: 2000 } }), nodes, prefs, at);
      if (d.move) moves++;
      at = d.nodeId;
    }
    expect(moves).toBe(0);
  });

  it('moves when the gain beats the margin plus the move cost, and explains a stay', () => {
    const nodes = [node('a', { decode: 10 }), node('b', { decode: 11 })];
    const stay = decide(step({ cachedTokens: { a: 2000, b: 2000 } }), nodes, anyFastest, 'a');
    expect(stay.nodeId).toBe('a');
    expect(stay.reason).toMatch(/^Stayed on a: b would be [\d.]+ s \(\+0\.5 s to move\) vs [\d.]+ s .* 20% margin/);
    const go = decide(step({ cachedTokens: { a: 2000, b: 2000 } }), [node('a', { decode: 10 }), node('b', { decode: 20 })], anyFastest, 'a');
    expect(go.nodeId).toBe('b');
    // Without hysteresis the 10% advantage does move.
    expect(decide(step({ cachedTokens: { a: 2000, b: 2000 } }), nodes, { ...anyFastest, hysteresis: 0, moveCostMs: 0 }, 'a').nodeId).toBe('b');
  });
});

describe('placement policy: KV shipping vs re-prefill', () => {
  it('ships the KV cache over a fast link rather than re-prefilling a long prompt on a slow node', () => {
    const src = node('src', { kind: 'my-device', trust: 'own', link: { rttMs: 10, bandwidthBps: 1e9 } });
    const dst = node('dst', { kind: 'my-device', trust: 'own', prefill: 50, decode: 100, link: { rttMs: 10, bandwidthBps: 1e9 } });
    const d = decide(step({ promptTokens: 8000, cachedTokens: { src: 8000 }, kvBytesPerToken: 131072 }), [src, dst], { objective: 'fastest', privacy: 'any', hysteresis: 0 }, 'src');
    const e = d.candidates.find((c) => c.nodeId === 'dst')!;
    expect(e.resume).toBe('kv-ship');
    expect(e.kvShipMs).toBeLessThan(e.prefillMs);
    expect(e.resumeMs).toBe(e.kvShipMs);
  });

  it('re-prefills when the link is slow and prefill fast', () => {
    const src = node('src', { link: { rttMs: 10, bandwidthBps: 1e6 } });
    const dst = node('dst', { prefill: 10_000, link: { rttMs: 10, bandwidthBps: 1e6 } });
    const d = decide(step({ promptTokens: 8000, cachedTokens: { src: 8000 } }), [src, dst], anyFastest, 'src');
    const e = d.candidates.find((c) => c.nodeId === 'dst')!;
    expect(e.resume).toBe('prefill');
    expect(e.resumeMs).toBe(e.prefillMs);
    expect(d.candidates.find((c) => c.nodeId === 'src')!.resume).toBe('cached');
  });

  it('never ships KV to or from an engine that cannot load it', () => {
    const d = decide(step({ promptTokens: 8000, cachedTokens: { src: 8000 } }), [node('src', { link: { rttMs: 1, bandwidthBps: 1e10 } }), node('dst', { prefill: 1, kvState: false })], anyFastest, 'src');
    expect(d.candidates.find((c) => c.nodeId === 'dst')!.resume).toBe('prefill');
  });
});

describe('placement policy: mid-generation', () => {
  it('shouldMigrate only when the measured rate is well short and enough is left', () => {
    expect(shouldMigrate(9, 10, 1000).redecide).toBe(false);
    expect(shouldMigrate(4, 10, 1000).redecide).toBe(true);
    expect(shouldMigrate(4, 10, 1000).reason).toMatch(/4\.00 tok\/s measured vs 10\.0 tok\/s estimated, 1,000 tokens left/);
    expect(shouldMigrate(4, 10, 10).redecide).toBe(false);
    expect(shouldMigrate(4, 10, 1000, { observedTokens: 3 }).redecide).toBe(false);
    expect(codeOf(() => shouldMigrate(Number.NaN, 10, 5))).toBe('placement/bad-rate');
  });

  it('re-decides with the measured rate and moves a slowed session', () => {
    const nodes = [laptop(), cloud()];
    const s = step({ promptTokens: 1000, expectedOutputTokens: 2000, cachedTokens: { laptop: 1000 } });
    const prefs: PlacementPrefs = { objective: 'fastest', privacy: 'any' };
    // Before: the laptop looks fine for a 2000-token answer against a queued cloud… make the cloud slow to start.
    const slowStart = [laptop(), cloud({ queueWaitMs: 150_000 })];
    expect(decide(s, slowStart, prefs, 'laptop').nodeId).toBe('laptop');
    const d = redecideMidGeneration(s, nodes, prefs, 'laptop', { measuredDecodeTps: 2, generatedTokens: 200, now: NOW });
    expect(d.nodeId).toBe('cloud');
    expect(d.reason).toMatch(/1,800 output tokens/);
  });
});

describe('profiles and input validation', () => {
  it('flags stale and missing speed measurements', () => {
    const n = phone();
    expect(isProfileStale(n, MODEL, NOW + 60_000)).toBe(false);
    expect(isProfileStale(n, MODEL, NOW + 11 * 60_000)).toBe(true);
    expect(isProfileStale(n, 'other-model', NOW)).toBe(true);
    expect(staleNodes([n, laptop({ models: { [MODEL]: { prefillTps: 1, decodeTps: 1, measuredAt: 0 } } })], MODEL, NOW).map((x) => x.id)).toEqual(['laptop']);
  });

  it('bad input gives typed errors that name the field', () => {
    expect(codeOf(() => decide(step({ promptTokens: -1 }), [phone()], anyFastest))).toBe('placement/bad-step');
    expect(codeOf(() => decide(step(), [phone()], { objective: 'quickest' } as unknown as PlacementPrefs))).toBe('placement/bad-prefs');
    expect(codeOf(() => decide(step(), [phone({ link: { rttMs: 1, bandwidthBps: 0 } })], anyFastest))).toBe('placement/bad-profile');
    expect(codeOf(() => decide(step(), [phone(), phone()], anyFastest))).toBe('placement/bad-profile');
    expect(() => restoreNodeProfile({ ...phone(), trust: 'third-party' })).toThrow(/this device is always trust "own"/);
    expect(() => restoreNodeProfile({ ...phone(), models: { [MODEL]: { prefillTps: 0, decodeTps: 1, measuredAt: 0 } } })).toThrow(/at "models\.llama-3\.1-8b-q4\.prefillTps"/);
    expect(restoreNodeProfile(JSON.parse(JSON.stringify(cloud())))).toEqual(cloud());
  });

  it('every decision has a reason and an estimate for every candidate', () => {
    const nodes = [phone(), laptop(), cloud()];
    for (const objective of ['fastest', 'cheapest', 'balanced'] as const) {
      for (const current of [undefined, 'phone', 'laptop', 'cloud']) {
        const d = decide(step(), nodes, { objective, privacy: 'any' }, current);
        expect(d.candidates).toHaveLength(3);
        expect(d.reason.length).toBeGreaterThan(20);
        expect(d.reason).toMatch(/\d s/);
      }
    }
  });
});
