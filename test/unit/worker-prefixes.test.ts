/**
 * Held prefixes on the wire: a worker (NodeLink + RunHost on a real node-llama-cpp engine, attached to a real relay
 * with the worker token) that ran a session lists, in the relay's worker list, the prefixes that session left in its
 * KV cache — keyed with the session's prefix key, never as raw token hashes. The session's device, keying a fork's
 * prompt the same way, finds them there, and the placement policy picks that worker for the fork because it holds
 * the prefix; under another session's key nothing matches.
 */
import { describe, expect, test } from 'vitest';
import * as v from 'valibot';
import { MAX_WIRE_PREFIXES, PREFIX_BLOCK, prefixBlockKeys } from '../../src/core/llm/prefix-keys.ts';
import { decide, heldPrefixKeys, relayProfiles, type NodeProfile } from '../../src/core/placement/index.ts';
import { WorkerToRelaySchema } from '../../src/core/protocol/index.ts';
import { generateSessionKey } from '../../src/core/snapshot/index.ts';
import { waitFor } from '../support/wait.ts';
import { usePrefixHolder } from './api/prefix-holder.ts';

describe('keyed held prefixes in the worker list', () => {
  const prefixRig = usePrefixHolder();

  test('a worker that ran a session lists its prefixes keyed by that session; the fork is placed there, another key matches nothing', async () => {
    const { worker, sessionId, published, listWorkers } = prefixRig();
    expect((await listWorkers()).workers[0]?.prefixes).toBeUndefined();
    await prefixRig().runThere('tell me a story');

    // What the worker's slot holds for the session now; a fork of it shares those tokens and goes on differently.
    const held = worker.slotTokens?.(sessionId) ?? [];
    expect(held.length).toBeGreaterThanOrEqual(PREFIX_BLOCK);
    const fork = [...held, ...Array.from({ length: 40 }, (_, i) => 300 + i)];

    const list = await listWorkers();
    const listed = list.workers[0]!;
    expect(listed.prefixes?.length).toBe(Math.floor(held.length / PREFIX_BLOCK));
    // Opaque on the wire: none of the raw token-hash keys of what it holds (a content fingerprint) is there.
    const raw = new Set(prefixBlockKeys(held));
    expect(listed.prefixes!.some((k) => raw.has(k))).toBe(false);

    // A rival with the same speeds, listed first: without a held prefix it would win the tie.
    const [holder] = relayProfiles(list, { rttMs: 5, bandwidthBps: 1e8 }, Date.now());
    const rival: NodeProfile = { ...holder!, id: 'rival', name: 'rival' };
    delete (rival as { prefixes?: unknown }).prefixes;
    const nodes = [rival, holder!];
    const step = { sessionId: 'fork', model: worker.info.model, promptTokens: fork.length, expectedOutputTokens: 8, kvBytesPerToken: 1000 };
    const prefs = { objective: 'fastest', privacy: 'any' } as const;

    const keyed = await heldPrefixKeys(published.key, fork);
    const placed = decide({ ...step, prefixKeys: keyed }, nodes, prefs);
    expect(placed.nodeId).toBe(listed.id);
    expect(placed.estimate.prefixTokens).toBe(Math.floor(held.length / PREFIX_BLOCK) * PREFIX_BLOCK);
    expect(placed.reason).toContain('shared prefix');

    // Another session's key: the same tokens give values the worker never listed.
    const stranger = await heldPrefixKeys(generateSessionKey(), fork);
    expect(stranger.some((k) => listed.prefixes!.includes(k))).toBe(false);
    const elsewhere = decide({ ...step, prefixKeys: stranger }, nodes, prefs);
    expect(elsewhere.nodeId).toBe('rival');
    expect(elsewhere.candidates.every((c) => c.prefixTokens === 0)).toBe(true);
  }, 120_000);

  test('a run lists what each generation leaves as it ends, before the run does', async () => {
    const { worker, sessionId, published, listWorkers } = prefixRig();
    // The run's second generation waits until the test has read the worker list: the run cannot have ended before.
    const generate = worker.generate;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    worker.generate = async function* (request) {
      if (++calls === 2) await gate;
      yield* generate.call(worker, request);
    };
    try {
      // Long enough that the first generation's prompt fills blocks no earlier run of the session left.
      const running = prefixRig().runThere(`/twice ${'a ferry crosses the harbour at dawn, '.repeat(8)}`);
      const firstDone = await waitFor('the second generation to start', () => calls === 2);
      expect(firstDone).toBe(true);
      const held = worker.slotTokens?.(sessionId) ?? [];
      const keyed = await heldPrefixKeys(published.key, held);
      expect(keyed.length).toBeGreaterThan(0);
      const listed = await waitFor("the first generation's prefixes in the worker list", async () => {
        const prefixes = (await listWorkers()).workers[0]?.prefixes ?? [];
        return keyed.every((k) => prefixes.includes(k)) ? prefixes : undefined;
      }, { timeoutMs: 20_000 });
      expect(listed.length).toBeGreaterThanOrEqual(keyed.length);
      release();
      await running;
    } finally {
      release();
      worker.generate = generate;
    }
  }, 120_000);

  test('a prefixes message is bounded and carries keyed values only', async () => {
    const keyed = await heldPrefixKeys(generateSessionKey(), Array.from({ length: PREFIX_BLOCK * 2 }, (_, i) => i));
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: keyed })).toBe(true);
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: Array.from({ length: MAX_WIRE_PREFIXES + 1 }, () => keyed[0]) })).toBe(false);
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: ['not a key'] })).toBe(false);
  });
});
