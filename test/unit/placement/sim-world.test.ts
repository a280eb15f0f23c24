/**
 * The placement bench's simulated world (bench/placement-world.ts, bench/placement.ts) where it has logic of its
 * own: one seed is one world (noise, episodes) and another seed another; a cold engine pays its load and runs
 * slower, a warm one does not; busy episodes and throttling only ever slow a node down; each engine keeps what its
 * real adapter keeps of a sequence that diverges, and node-llama-cpp's row matches a real engine's report; and the
 * oracle, run from the same state in the same world, never scores worse than the policy on any step.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COLD_AFTER_MS, ENGINES, TrueSpeeds, keptAfterDivergence, worldRandom, type NodeBehaviour } from '../../../bench/placement-world.ts';
import { SESSION_COUNT, policyAndOracleSteps } from '../../../bench/placement.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { cpuEngine, modelDir } from '../llm/fixtures.ts';

const BEHAVIOUR: Record<string, NodeBehaviour> = {
  phone: { noise: 0.25, coldLoadMs: 10_000, coldFactor: 0.7, throttle: { after: 60_000, factor: 0.6 } },
  laptop: { noise: 0.15, coldLoadMs: 6_000, coldFactor: 0.6, busy: { every: 600_000, lasts: 120_000, factor: 0.35 } },
};
const HOUR = 3600_000;
const world = (seed: number) => new TrueSpeeds(worldRandom(seed), BEHAVIOUR, HOUR);

describe('the simulated world', () => {
  it('is reproducible by seed, and another seed is another world', () => {
    const a = world(8);
    const b = world(8);
    const c = world(9);
    const keys = Array.from({ length: 200 }, (_, i) => [i % 17, i]);
    const at = (w: TrueSpeeds, node: string) => keys.map((k, i) => w.step(node, i * 15_000, k, i * 15_000 - 1).factor * w.slowdown(node, i * 15_000, 0));
    expect(at(a, 'laptop')).toEqual(at(b, 'laptop'));
    expect(at(a, 'phone')).toEqual(at(b, 'phone'));
    expect(at(a, 'laptop')).not.toEqual(at(c, 'laptop'));
    // Noise has median 1 and a spread: some steps faster than nominal, some slower.
    const noise = keys.map((k) => a.noise('phone', k));
    expect(Math.min(...noise)).toBeLessThan(1);
    expect(Math.max(...noise)).toBeGreaterThan(1);
  });

  it('a cold engine pays its load and runs slower on its first step; a warm one does not', () => {
    const w = world(8);
    const t = 30 * 60_000;
    const key = [1, 2];
    const hot = w.step('phone', t, key, t - 60_000);
    const never = w.step('phone', t, key, undefined);
    const idle = w.step('phone', t, key, t - COLD_AFTER_MS - 1);
    expect(hot.coldLoadMs).toBe(0);
    expect(never.coldLoadMs).toBe(10_000);
    expect(idle.coldLoadMs).toBe(10_000);
    expect(never.factor).toBeCloseTo(hot.factor * 0.7, 12);
  });

  it('busy episodes and throttling only slow a node, and the laptop is busy some of the time', () => {
    const w = world(8);
    const slow = Array.from({ length: 3600 }, (_, i) => w.slowdown('laptop', i * 1000, 0));
    expect(slow.every((f) => f === 1 || f === 0.35)).toBe(true);
    expect(slow.filter((f) => f < 1).length).toBeGreaterThan(0);
    expect(slow.filter((f) => f === 1).length).toBeGreaterThan(slow.length / 2);
    expect(w.slowdown('phone', 0, 59_000)).toBe(1);
    expect(w.slowdown('phone', 0, 61_000)).toBe(0.6);
    expect(w.step('phone', 0, [0], 0).factor).toBe(w.noise('phone', [0]));
  });

  it('each engine keeps what its adapter keeps of a sequence that diverges', () => {
    expect(keptAfterDivergence('web-llm', 5000, 2000)).toBe(0);
    expect(keptAfterDivergence('wllama', 5000, 2000)).toBe(2000);
    expect(keptAfterDivergence('node-llama-cpp', 1500, 2000)).toBe(1500);
    expect(ENGINES['web-llm'].kvState).toBe(false);
    expect(ENGINES.wllama.kvState).toBe(false);
  });

  describe('node-llama-cpp as the real engine reports it', () => {
    let models: Awaited<ReturnType<typeof modelDir>>;
    let engine: NodeLlamaEngine;
    beforeAll(async () => {
      models = await modelDir();
      engine = await cpuEngine(await models.model('tiny.gguf'));
    });
    afterAll(async () => {
      await engine?.dispose();
      await models?.cleanup();
    });
    it('saves and loads KV state and verifies drafts', () => {
      expect(ENGINES['node-llama-cpp'].kvState).toBe(engine.info.kvState);
      expect(ENGINES['node-llama-cpp'].verify).toBe(typeof engine.verify === 'function');
    });
  });

  it('the oracle never scores worse than the policy on a step, from the same state in the same world', () => {
    let steps = 0;
    let better = 0;
    // Every session with the own GPU desktop (on and off: where choices differ most), every fourth in the fleet
    // under each objective (each workload, each privacy setting, both devices in hand).
    const runs = [
      ...Array.from({ length: SESSION_COUNT }, (_, i) => [i, 'balanced', true] as const),
      ...(['balanced', 'fastest', 'cheapest'] as const).flatMap((objective) => Array.from({ length: Math.ceil(SESSION_COUNT / 4) }, (_, i) => [i * 4, objective, false] as const)),
    ];
    for (const [i, objective, ownGpu] of runs) {
      for (const { policy, oracle } of policyAndOracleSteps(i, objective, ownGpu)) {
        expect(oracle).toBeLessThanOrEqual(policy + 1e-9);
        steps++;
        if (oracle < policy - 1e-9) better++;
      }
    }
    expect(steps).toBeGreaterThan(1000);
    // The world is not the policy's estimate: somewhere the oracle knows better.
    expect(better).toBeGreaterThan(0);
  });
});
