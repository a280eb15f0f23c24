/**
 * Held prefixes on the wire: a worker (NodeLink + RunHost on a real node-llama-cpp engine, attached to a real relay
 * with the worker token) that ran a session lists, in the relay's worker list, the prefixes that session left in its
 * KV cache — keyed with the session's prefix key, never as raw token hashes. The session's device, keying a fork's
 * prompt the same way, finds them there, and the placement policy picks that worker for the fork because it holds
 * the prefix; under another session's key nothing matches.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import { NodeLink, type LinkSocket } from '../../src/core/host/node-link.ts';
import { measureProfile } from '../../src/core/host/measure-profile.ts';
import { RunHost } from '../../src/core/host/run-host.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { MAX_WIRE_PREFIXES, PREFIX_BLOCK, prefixBlockKeys } from '../../src/core/llm/prefix-keys.ts';
import { decide, heldPrefixKeys, relayProfiles, type NodeProfile } from '../../src/core/placement/index.ts';
import { RelayHttp, RunRecordSchema, WorkerListSchema, WorkerToRelaySchema, createWorkerKeys, publishSession, workerPaths, type PublishResult } from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { generateSessionKey } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { fixtures, loader, setupFor, tinyEngine, tinyModelFile, turn, type Fixtures } from '../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { followToEnd, postRun, runBody } from './api/fake-worker.ts';

const TOKEN = 'k'.repeat(43);

describe('keyed held prefixes in the worker list', () => {
  let f: Fixtures;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let device: Engine;
  let worker: Engine;
  let link: NodeLink;
  let published: PublishResult;
  let sessionId: string;

  beforeAll(async () => {
    f = await fixtures();
    dirs = await makeTempDirs();
    const model = await tinyModelFile();
    // No model of its own: the only worker is the one attached below.
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, componentDirs: Object.values(f.dirs) });
    [device, worker] = await Promise.all([tinyEngine(model), tinyEngine(model)]);
    const host = new RunHost({ engine: worker, keys: await createWorkerKeys(), load: loader(f), relayUrl: () => relay.url });
    link = new NodeLink({
      relayUrl: relay.url,
      host,
      profile: await measureProfile(worker, { name: 'holder', slots: 1 }),
      open: (url) => new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } }) as unknown as LinkSocket,
      log: () => undefined,
    });
    await link.start(() => undefined);
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, device), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'hello world', true);
    sessionId = runtime.session.id;
    await runtime.dispose();
    published = await publishSession(store, sessionId, new RelayHttp({ baseUrl: relay.url }));
  }, 180_000);

  afterAll(async () => {
    await link?.close();
    await relay?.close();
    await Promise.all([device?.dispose(), worker?.dispose()]);
    await dirs?.cleanup();
  });

  const listWorkers = async () => v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json());

  test('a worker that ran a session lists its prefixes keyed by that session; the fork is placed there, another key matches nothing', async () => {
    expect((await listWorkers()).workers[0]?.prefixes).toBeUndefined();
    const res = await postRun(relay.url, await runBody(relay.url, published, { type: 'user', text: 'tell me a story' }));
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const { code } = await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, published.key);
    expect(code).toBe(1000);

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

  test('a prefixes message is bounded and carries keyed values only', async () => {
    const keyed = await heldPrefixKeys(generateSessionKey(), Array.from({ length: PREFIX_BLOCK * 2 }, (_, i) => i));
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: keyed })).toBe(true);
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: Array.from({ length: MAX_WIRE_PREFIXES + 1 }, () => keyed[0]) })).toBe(false);
    expect(v.is(WorkerToRelaySchema, { type: 'prefixes', keys: ['not a key'] })).toBe(false);
  });
});
