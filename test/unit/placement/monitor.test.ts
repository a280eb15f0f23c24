/**
 * The product's placement glue (src/core/placement/fleet.ts, monitor.ts): the relay's worker list becomes node
 * profiles (devices of the space and unpriced workers are "my devices", priced cloud workers third-party, load
 * becomes queue wait, this device's own node entry is not counted twice); a generation watch says "move" once when
 * the measured rate falls well short of the estimate and another node wins by more than the hysteresis, never for
 * a private session, and not while the node is on track; a reply running past its expected length still counts as
 * having tokens to come.
 */
import { describe, expect, test } from 'vitest';
import { GenerationWatch, relayProfiles, thisDeviceProfile, type NodeProfile } from '../../../src/core/placement/index.ts';
import type { WorkerList } from '../../../src/core/protocol/index.ts';
import { MODEL, NOW, anyFastest, laptop, phone, step } from './fixtures.ts';

/** A worker's public key (placement never reads it). */
const KEY = 'A'.repeat(87);

const workerProfile = (name: string, decodeTps: number) => ({ name, model: MODEL, tokenizer: 't', engine: 'wllama', device: 'cpu', contextSize: 4096, slots: 1, prefillTps: decodeTps * 10, decodeTps });

describe('fleet profiles from the relay', () => {
  const list: WorkerList = {
    workers: [
      { id: 'a'.repeat(16), kind: 'cloud', embedded: true, runs: 3, profile: { ...workerProfile('embedded', 200), slots: 2, price: { promptPer1k: 0.001, outputPer1k: 0.002 } }, publicKey: KEY },
      { id: 'b'.repeat(16), kind: 'device', embedded: false, runs: 0, profile: workerProfile('laptop', 40), publicKey: KEY },
      { id: 'c'.repeat(16), kind: 'device', embedded: false, runs: 0, profile: workerProfile('this phone', 10), publicKey: KEY },
      { id: 'd'.repeat(16), kind: 'device', embedded: false, runs: 0, profile: workerProfile('unmeasured', 0), publicKey: KEY },
    ],
  };

  test('devices and unpriced workers are mine, priced ones third-party; load is queue wait; self and unmeasured are left out', () => {
    const nodes = relayProfiles(list, { rttMs: 30, bandwidthBps: 5e6 }, NOW, 'c'.repeat(16));
    expect(nodes.map((n) => [n.name, n.kind, n.trust])).toEqual([['embedded', 'cloud', 'third-party'], ['laptop', 'my-device', 'own']]);
    const free = relayProfiles({ workers: [{ ...list.workers[0]!, profile: workerProfile('own-gpu', 200) }] }, { rttMs: 30, bandwidthBps: 5e6 }, NOW);
    expect(free[0]).toMatchObject({ kind: 'cloud', trust: 'own' });
    expect(nodes[0]).toMatchObject({ queueWaitMs: 4000, price: { promptPer1k: 0.001, outputPer1k: 0.002 }, link: { rttMs: 30 } });
    expect(nodes[1]).toMatchObject({ queueWaitMs: 0, price: { promptPer1k: 0, outputPer1k: 0 }, models: { [MODEL]: { decodeTps: 40, measuredAt: NOW } } });
  });

  test('this device: own, no link, its battery', () => {
    const me = thisDeviceProfile({ id: 'me', name: 'phone', model: MODEL, prefillTps: 100, decodeTps: 10, measuredAt: NOW, battery: { level: 0.5, charging: false }, kvState: false });
    expect(me).toMatchObject({ kind: 'this-device', trust: 'own', link: { rttMs: 0 }, battery: { level: 0.5 }, queueWaitMs: 0 });
  });
});

describe('generation watch', () => {
  /** Feeds `n` tokens `ms` apart on a virtual clock; returns the first decision to move. */
  function feed(watch: GenerationWatch, clock: { t: number }, n: number, ms: number) {
    for (let i = 0; i < n; i++) {
      clock.t += ms;
      const d = watch.token();
      if (d) return d;
    }
    return undefined;
  }
  const fleet = (): NodeProfile[] => [phone({ decode: 20 }), laptop({ decode: 17 })];

  test('on track: no move; slowed well below the estimate: one move, to a faster node, with a reason', () => {
    const clock = { t: 0 };
    const watch = new GenerationWatch({ step: step({ expectedOutputTokens: 2000 }), nodes: fleet(), prefs: { objective: 'fastest', privacy: 'my-devices' }, current: 'phone', now: () => clock.t });
    expect(feed(watch, clock, 100, 50)).toBeUndefined(); // 20 tok/s, as estimated
    const move = feed(watch, clock, 100, 500); // 2 tok/s: the laptop's 17 wins
    expect(move).toMatchObject({ nodeId: 'laptop', move: true });
    expect(move!.reason).toMatch(/laptop/);
    expect(feed(watch, clock, 100, 500)).toBeUndefined(); // says it once
  });

  test('a reply that runs past its expected length is still handed on when the node slows: as many tokens again are expected', () => {
    const clock = { t: 0 };
    const make = (replyLimit?: number) =>
      new GenerationWatch({ step: step({ expectedOutputTokens: 100 }), ...(replyLimit ? { replyLimit } : {}), nodes: fleet(), prefs: { objective: 'fastest', privacy: 'my-devices' }, current: 'phone', now: () => clock.t });
    const watch = make(2000);
    expect(feed(watch, clock, 150, 50)).toBeUndefined(); // past the 100 expected, on track
    const move = feed(watch, clock, 50, 500); // slowed to 2 tok/s at ~170 tokens: ~170 more expected, the laptop wins
    expect(move).toMatchObject({ nodeId: 'laptop', move: true });
    expect(move!.estimate.decodeMs).toBeGreaterThan(0);
    // Without a limit above the expectation the reply is taken as over: finishing here beats moving.
    const capped = make();
    expect(feed(capped, clock, 150, 50)).toBeUndefined();
    expect(feed(capped, clock, 50, 500)).toBeUndefined();
  });

  test('a private session is never moved, however slow', () => {
    const clock = { t: 0 };
    const watch = new GenerationWatch({ step: step({ expectedOutputTokens: 2000 }), nodes: fleet(), prefs: { objective: 'fastest', privacy: 'this-device' }, current: 'phone', now: () => clock.t });
    expect(feed(watch, clock, 300, 1000)).toBeUndefined();
    expect(watch.last?.nodeId).toBe('phone');
  });

  test('slow, but nothing is faster enough to beat the hysteresis: it stays', () => {
    const clock = { t: 0 };
    const watch = new GenerationWatch({ step: step({ expectedOutputTokens: 2000 }), nodes: [phone({ decode: 20 }), laptop({ decode: 8 })], prefs: { ...anyFastest, privacy: 'my-devices' }, current: 'phone', now: () => clock.t });
    expect(feed(watch, clock, 200, 110)).toBeUndefined(); // 9 tok/s measured vs the laptop's 8
  });
});
