/**
 * The device's decision for a fork counts the prefix a worker holds: a session runs on a real worker (NodeLink +
 * RunHost on a node-llama-cpp engine, attached to a real relay), its checkpoints come back to the device, and the
 * device forks it (or rolls it back). The next step (src/browser/next-step.ts nextStep, with the key the run used)
 * carries the prefix that run's newest generation left, keyed as the worker lists its own, so decideNextStep places
 * the fork on that worker, saying it shares the prefix; where the worker's tokenizer is another, nothing is counted.
 */
import { describe, expect, test } from 'vitest';
import { decideNextStep, nextStep, thisDeviceNode } from '../../src/browser/next-step.ts';
import { PREFIX_BLOCK } from '../../src/core/llm/prefix-keys.ts';
import { relayProfiles, type NodeProfile } from '../../src/core/placement/index.ts';
import { RelayHttp, fetchSnapshot } from '../../src/core/protocol/index.ts';
import { Session } from '../../src/core/session/index.ts';
import { generateSessionKey } from '../../src/core/snapshot/index.ts';
import { usePrefixHolder } from './api/prefix-holder.ts';

const LIMITS = { replyTokens: 64, contextSize: 2048 };
const PREFS = { objective: 'fastest', privacy: 'any' } as const;

describe("a fork's placement counts the prefix a worker holds", () => {
  const prefixRig = usePrefixHolder();

  test('run on the worker, back here and forked: the fork goes to the worker for its shared prefix; another tokenizer counts none', async () => {
    const { relay, worker, store, sessionId, published, listWorkers } = prefixRig();
    const before = await (await Session.open(store, sessionId)).head();
    await prefixRig().runThere('tell me a story');
    // The worker's checkpoints come back to this device's store, and the device forks the session at its head.
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, store, { engine: null });
    const session = await Session.open(store, sessionId);
    const ranThere = await session.head();
    expect(ranThere).not.toBe(before);
    await session.fork(ranThere, 'alt');
    await session.switchBranch('alt');

    const list = await listWorkers();
    const listed = list.workers[0]!;
    const heldBlocks = listed.prefixes?.length ?? 0;
    expect(heldBlocks).toBeGreaterThan(0);
    const [holder] = relayProfiles(list, { rttMs: 5, bandwidthBps: 1e8 }, Date.now());
    expect(holder!.tokenizer).toBe(worker.info.tokenizerId);
    // A rival with the same speeds, listed first: without a held prefix it would win the tie. This device is slow.
    const rival: NodeProfile = { ...holder!, id: 'rival', name: 'rival' };
    delete (rival as { prefixes?: unknown }).prefixes;
    const here = thisDeviceNode(worker.info.model, 0.5);

    const step = await nextStep(session, LIMITS, published.key);
    expect(step.prefix?.tokenizer).toBe(worker.info.tokenizerId);
    const placed = decideNextStep(step, here, [rival, holder!], PREFS);
    expect(placed.nodeId).toBe(listed.id);
    const prefixTokens = placed.candidates.find((c) => c.nodeId === listed.id)!.prefixTokens;
    expect(prefixTokens).toBeGreaterThan(0);
    expect(prefixTokens).toBeLessThanOrEqual(heldBlocks * PREFIX_BLOCK);
    expect(placed.reason).toContain('shared prefix');

    // Rolled back to before the worker's run: that run's prompt began with what the step before it left.
    await session.rollback(before);
    const back = decideNextStep(await nextStep(session, LIMITS, published.key), here, [rival, holder!], PREFS);
    expect(back.nodeId).toBe(listed.id);
    expect(back.candidates.find((c) => c.nodeId === listed.id)!.prefixTokens).toBeGreaterThan(0);

    // The worker's tokenizer is another: its prefixes hash other ids, so the step's keys are not counted there.
    const other: NodeProfile = { ...holder!, tokenizer: 'another-tokenizer' };
    const elsewhere = decideNextStep(step, here, [rival, other], PREFS);
    expect(elsewhere.nodeId).toBe('rival');
    expect(elsewhere.candidates.every((c) => c.prefixTokens === 0)).toBe(true);

    // Without the key of the run that left the prefix (another session's, or none), nothing matches either.
    const stranger = await nextStep(session, LIMITS, generateSessionKey());
    expect(decideNextStep(stranger, here, [rival, holder!], PREFS).candidates.every((c) => c.prefixTokens === 0)).toBe(true);
    expect((await nextStep(session, LIMITS)).prefix).toBeUndefined();
  }, 120_000);
});
