/**
 * Context parallelism for real (issue 8): a relay with its embedded cloud worker and two device nodes of one space
 * (NodeLink + RunHost on node-llama-cpp, the tiny generated model), and a parent survey session on "this device"
 * whose step forks one child per source — 12 generated sources. The children run as child sessions on the three
 * nodes (relay-children.ts). The merged `children` result holds all 12 parts in order, each the final state of its
 * own child session, and more than one node ran them. Then a node is killed (its socket cut) while one of its
 * children has published checkpoints: its children are requeued and finish elsewhere, none lost or run twice, and
 * the child that had published resumes from its last checkpoint, keeping every one acknowledged before the kill.
 * And the agent worker's API, given a parallel config, runs the same survey with its children on the nodes and
 * streams their progress to its subscribers. The embedded worker charges for its output tokens: each child it ran
 * records its cost, the devices' children cost nothing, and the parent's step that forked them pays their sum.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Engine } from '../../../src/core/llm/engine.ts';
import type { ChildProgress } from '../../../src/core/runtime/index.ts';
import { createServer } from 'node:net';
import { RelayHttp, createSpaceSecret, fetchSnapshot, publishSession, spaceCredentials, startSealedRun, type OpenRunMessage, type RunPlacement } from '../../../src/core/protocol/index.ts';
import { followRun } from '../../../src/core/parallel/index.ts';
import { createAgentApi, unwrap } from '../../../src/core/host/agent-api.ts';
import type { RunnerEvent } from '../../../src/core/host/index.ts';
import { readHostState } from '../../../src/core/runtime/checkpoint.ts';
import type { ChildResult } from '../../../src/core/runtime/index.ts';
import { AgentRuntime, type RuntimeEvent } from '../../../src/core/runtime/runtime.ts';
import { Session } from '../../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { componentFiles } from '../../../server/runtime/node-tools.ts';
import { tinyEngine, tinyModelFile } from '../../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';
import { componentsDir, generatedSources, listSpace, openSocket, startDeviceNode, surveyComponents, surveyParentSetup, waitForNodes, type DeviceNode } from './space-nodes.ts';

const SOURCES = 12;
const sampling = { maxTokens: 32, temperature: 0, seed: 0 };

describe('a survey\'s children as child sessions on the nodes of a space', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let space: string;
  let parts: Awaited<ReturnType<typeof surveyComponents>>;
  let parentEngine: Engine;
  const nodes: DeviceNode[] = [];
  let embeddedId: string;
  let model: string;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    parts = await surveyComponents();
    model = await tinyModelFile();
    // $1 per 1,000 output tokens on the embedded worker: a child's step there costs 1,000 micro-dollars a token.
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: [componentsDir], embeddedWorker: true, heartbeatMs: 2000, workerPrice: { promptPer1k: 0, outputPer1k: 1 } });
    const member = await spaceCredentials(createSpaceSecret());
    space = member.id;
    parentEngine = await tinyEngine(model);
    // One after another: each node measures its speed on its own, not while another loads its model.
    embeddedId = (await waitForNodes(relay.url, space, 1))[0]!.id;
    for (const name of ['laptop', 'phone']) nodes.push(await startDeviceNode(relay.url, member, name, model, parts.library));
    await waitForNodes(relay.url, space, 3);
  }, 600_000);

  afterAll(async () => {
    for (const n of nodes) await n.close();
    await parentEngine?.dispose();
    await relay?.close();
    await dirs?.cleanup();
  });

  /** Runs a survey parent whose children go to the space's nodes; `onProgress` may act on the job as it goes. */
  async function survey(store: Store, onProgress: (p: ChildProgress) => void = () => undefined, signal?: AbortSignal) {
    const progress: ChildProgress[] = [];
    const setup = surveyParentSetup({
      engine: parentEngine,
      library: parts.library,
      relayUrl: relay.url,
      space,
      sampling,
      store,
      onProgress: (p) => {
        progress.push(p);
        onProgress(p);
      },
    });
    const parent = await AgentRuntime.create(createMemoryStore(), setup, { agent: parts.survey, tools: [parts.docs, parts.notes] });
    const events: RuntimeEvent[] = [];
    const sources = generatedSources(SOURCES);
    for await (const e of parent.run({ type: 'start', task: JSON.stringify({ topic: 'working harbours', sources }) }, signal)) events.push(e);
    await parent.dispose();
    const children = events.find((e): e is Extract<RuntimeEvent, { type: 'children' }> => e.type === 'children');
    expect(children, `the parent never got its children's results: ${JSON.stringify(events.filter((e) => e.type === 'step-failed'))}`).toBeDefined();
    return { results: children!.results, progress, events, sources, parent: parent.session };
  }

  /**
   * Every part is there, in order, and is its own child's: the child session of `source-i` was given source i's
   * task exactly once, and its final published state (done) says what the merged result says.
   */
  async function expectEveryPart(store: Store, results: ChildResult[], progress: ChildProgress[]) {
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: SOURCES }, (_, i) => `source-${i + 1}`));
    const starts = progress.filter((p): p is Extract<ChildProgress, { type: 'child-start' }> => p.type === 'child-start');
    for (const [i, r] of results.entries()) {
      expect(r.ok, `${r.id}: ${r.output}`).toBe(true);
      expect(r.output.length).toBeGreaterThan(0);
      const sessionId = starts.find((s) => s.child === r.id)!.session;
      expect(new Set(starts.filter((s) => s.child === r.id).map((s) => s.session))).toEqual(new Set([sessionId]));
      const session = await Session.open(store, sessionId);
      const history = await session.history();
      const tasks = history.flatMap((h) => h.checkpoint.events).filter((e) => e.type === 'user');
      expect(tasks).toHaveLength(1);
      expect(JSON.parse((tasks[0] as { text: string }).text)).toMatchObject({ mode: 'source-notes', index: i + 1 });
      const state = (await readHostState(session, history[0]!.id)).loop;
      expect(state.status).toBe('done');
      expect(state.summary).toBe(r.output);
    }
    const done = progress.filter((p): p is Extract<ChildProgress, { type: 'child-done' }> => p.type === 'child-done');
    expect(done.map((d) => d.child).sort()).toEqual(results.map((r) => r.id).sort());
    return { starts, done };
  }

  /**
   * The plan (the `nodes` event) covers every child once, and was followed: every node it gave a child ran one (a
   * node's first planned child starts at once and cannot be stolen), and no child ran outside the planned nodes.
   */
  function expectPlanFollowed(progress: ChildProgress[], childIds: string[]) {
    const { nodes: planned, plan } = progress.find((p): p is Extract<ChildProgress, { type: 'nodes' }> => p.type === 'nodes')!;
    const ran = new Set(progress.flatMap((p) => (p.type === 'child-done' ? [p.node] : [])));
    expect(Object.values(plan).flat().sort()).toEqual([...childIds].sort());
    for (const node of ran) expect(planned.map((n) => n.id)).toContain(node);
    for (const [node, children] of Object.entries(plan)) if (children.length > 0) expect(ran, JSON.stringify({ planned, plan })).toContain(node);
    return { planned, ran };
  }

  test('12 sources: the children are split across the three nodes and merged in order', async () => {
    const store = createMemoryStore();
    const { results, progress, parent } = await survey(store);
    const { starts, done } = await expectEveryPart(store, results, progress);
    // Split by measured speed (each node's profile, then what it shows): more than one node ran children.
    const { ran: nodesUsed } = expectPlanFollowed(progress, results.map((r) => r.id));
    expect(nodesUsed.size).toBeGreaterThan(1);
    for (const id of nodesUsed) expect([embeddedId, ...nodes.map((n) => n.id)]).toContain(id);
    expect(progress.find((p) => p.type === 'nodes')).toMatchObject({ nodes: expect.arrayContaining([expect.objectContaining({ id: embeddedId, kind: 'cloud' }), expect.objectContaining({ id: nodes[0]!.id, kind: 'device' })]) });
    expect(progress.filter((p) => p.type === 'child-requeued' || p.type === 'node-lost')).toEqual([]);

    // What it cost: each child on the paid embedded worker 1,000 micro-dollars a generated token, on a device
    // nothing; the parent (on this free device) paid exactly their sum, in the step that forked them.
    let children = 0;
    for (const r of results) {
      const session = await Session.open(store, starts.find((s) => s.child === r.id)!.session);
      const { counters } = await session.checkpoint(await session.head());
      const node = done.find((d) => d.child === r.id)!.node;
      expect(counters.costMicros, r.id).toBe(node === embeddedId ? 1000 * counters.tokens : 0);
      children += counters.costMicros;
    }
    if (nodesUsed.has(embeddedId)) expect(children).toBeGreaterThan(0);
    const history = (await parent.history()).reverse();
    const forkStep = history.findIndex((h, i) => i > 0 && h.checkpoint.counters.costMicros !== history[i - 1]!.checkpoint.counters.costMicros);
    expect(history.at(-1)!.checkpoint.counters.costMicros).toBe(children);
    if (children > 0) expect(history[forkStep]!.checkpoint.counters.costMicros).toBe(children);
  }, 300_000);

  test('a node killed mid-job: its children are requeued and finish elsewhere; the one that had published resumes from its checkpoints', async () => {
    const store = createMemoryStore();
    let victim: DeviceNode | undefined;
    let killed: Promise<void> | undefined;
    const { results, progress } = await survey(store, (p) => {
      // The first checkpoint a child publishes on a device node: cut that node there, mid-child.
      if (killed || p.type !== 'child-checkpoint') return;
      victim = nodes.find((n) => n.id === p.node);
      killed = victim?.kill();
    });
    await killed;
    expect(victim, 'no child ran on a device node').toBeDefined();
    // Cut mid-child, the node counts no run any more (the relay hands them on).
    expect(Math.max(...victim!.runs)).toBeGreaterThan(0);
    expect(victim!.runs.at(-1)).toBe(0);
    const killedAfter = progress.findIndex((p) => p.type === 'child-checkpoint' && p.node === victim!.id);
    const { starts, done } = await expectEveryPart(store, results, progress);

    expect(progress.filter((p) => p.type === 'node-lost').map((p) => (p as { node: string }).node)).toEqual([victim!.id]);
    const requeued = progress.filter((p): p is Extract<ChildProgress, { type: 'child-requeued' }> => p.type === 'child-requeued');
    expect(requeued.length).toBeGreaterThan(0);
    for (const r of requeued) expect(done.find((d) => d.child === r.child)!.node).not.toBe(victim!.id);
    // Each child finished once; nothing finished on the victim after it was cut.
    expect(new Set(done.map((d) => d.child)).size).toBe(SOURCES);
    expect(done.filter((d) => d.node === victim!.id && progress.indexOf(d) > killedAfter)).toEqual([]);

    // The child cut mid-way resumed elsewhere from its last published checkpoint, and kept every acknowledged one.
    const cut = (progress[killedAfter] as Extract<ChildProgress, { type: 'child-checkpoint' }>).child;
    const retried = starts.filter((s) => s.child === cut);
    expect(retried.map((s) => [s.attempt, s.input])).toEqual([[1, 'start'], [2, 'resume']]);
    expect(retried[1]!.node).not.toBe(victim!.id);
    const acknowledged = progress.filter((p): p is Extract<ChildProgress, { type: 'child-checkpoint' }> => p.type === 'child-checkpoint' && p.child === cut && p.node === victim!.id);
    const history = (await (await Session.open(store, retried[0]!.session)).history()).map((h) => h.id);
    for (const a of acknowledged) expect(history).toContain(a.checkpoint);
  }, 300_000);
  test('cancelling the parent hands its running children back and answers the unfinished ones as cancelled', async () => {
    const cancel = new AbortController();
    const { results, progress, events } = await survey(createMemoryStore(), (p) => {
      if (p.type === 'child-done') cancel.abort();
    }, cancel.signal);
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: SOURCES }, (_, i) => `source-${i + 1}`));
    const done = new Set(progress.flatMap((p) => (p.type === 'child-done' ? [p.child] : [])));
    expect(done.size).toBeGreaterThan(0);
    for (const r of results) {
      if (done.has(r.id)) expect(r.ok).toBe(true);
      else expect(r).toEqual({ id: r.id, ok: false, output: 'Cancelled before it finished.' });
    }
    expect(results.some((r) => !r.ok)).toBe(true);
    expect(events.at(-1)).toEqual({ type: 'paused', reason: 'cancelled' });
    // Nothing is left running on any node: the children that were running were handed back.
    let busy = await listSpace(relay.url, space);
    for (let i = 0; i < 100 && busy.some((w) => w.runs > 0); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      busy = await listSpace(relay.url, space);
    }
    expect(busy.map((w) => w.runs)).toEqual(busy.map(() => 0));
    // And each device node says so itself, never having counted more runs than its one slot.
    for (const node of nodes) {
      expect(node.runs.at(-1) ?? 0, node.name).toBe(0);
      expect(Math.max(0, ...node.runs), node.name).toBeLessThanOrEqual(1);
    }
  }, 300_000);

  test('a child on a paid worker: what it spent counts in the parent\'s step', async () => {
    const store = createMemoryStore();
    const progress: ChildProgress[] = [];
    // A space with no device: the child goes to the paid embedded worker.
    const setup = surveyParentSetup({ engine: parentEngine, library: parts.library, relayUrl: relay.url, space: (await spaceCredentials(createSpaceSecret())).id, sampling, store, onProgress: (p) => progress.push(p) });
    const parent = await AgentRuntime.create(store, setup, { agent: parts.survey, tools: [parts.docs, parts.notes] });
    for await (const e of parent.run({ type: 'start', task: JSON.stringify({ topic: 'working harbours', sources: generatedSources(1) }) })) void e;
    const history = await parent.session.history();
    await parent.dispose();
    expect(progress.find((p) => p.type === 'child-done')).toMatchObject({ child: 'source-1', node: embeddedId });
    const start = progress.find((p): p is Extract<ChildProgress, { type: 'child-start' }> => p.type === 'child-start')!;
    const child = await Session.open(store, start.session);
    const { counters } = await child.checkpoint(await child.head());
    expect(counters.costMicros).toBeGreaterThan(0);
    expect(history[0]!.checkpoint.counters.costMicros).toBe(counters.costMicros);
  }, 300_000);

  test('no node can take them (none of the space\'s own, the relay out of reach): the children run here, one by one, saying why', async () => {
    const sources = generatedSources(3);
    const ids = sources.map((_, i) => `source-${i + 1}`);
    const down = `http://127.0.0.1:${await closedPort()}`;
    for (const [relayUrl, why] of [[relay.url, /No node of this space can take the children.*1 cloud worker\(s\) are attached/], [down, /Cannot reach the relay/]] as const) {
      const progress: ChildProgress[] = [];
      const setup = surveyParentSetup({ engine: parentEngine, library: parts.library, relayUrl, space: (await spaceCredentials(createSpaceSecret())).id, cloud: false, sampling, onProgress: (p) => progress.push(p) });
      const parent = await AgentRuntime.create(createMemoryStore(), setup, { agent: parts.survey, tools: [parts.docs, parts.notes] });
      const events: RuntimeEvent[] = [];
      for await (const e of parent.run({ type: 'start', task: JSON.stringify({ topic: 'working harbours', sources }) })) events.push(e);
      await parent.dispose();
      expect(progress[0]).toMatchObject({ type: 'here', children: 3, reason: expect.stringMatching(why) });
      const children = events.find((e): e is Extract<RuntimeEvent, { type: 'children' }> => e.type === 'children');
      expect(children?.results.map((r) => [r.id, r.ok])).toEqual(ids.map((id) => [id, true]));
      // Each one's end, in order, as it happens (the live turn's progress bar).
      expect(progress.slice(1).map((p) => (p.type === 'child-done' ? [p.child, p.node, p.ok] : p.type))).toEqual(ids.map((id) => [id, 'here', true]));
      expect(events.filter((e) => e.type === 'step-failed')).toEqual([]);
    }
  }, 300_000);

  /** A survey session made here and published, then started on the relay placed `where`; resolves when the run ends. */
  async function surveyOnRelay(where: RunPlacement, sourceCount: number) {
    const load = (id: string) => parts.library.load(id);
    const store = createMemoryStore();
    const made = await AgentRuntime.create(store, { engine: parentEngine, load, sampling }, { agent: parts.survey, tools: [parts.docs, parts.notes] });
    const sessionId = made.session.id;
    await made.dispose();
    const published = await publishSession(store, sessionId, new RelayHttp({ baseUrl: relay.url }));
    const sources = generatedSources(sourceCount);
    const http = new RelayHttp({ baseUrl: relay.url });
    const input = { type: 'start' as const, task: JSON.stringify({ topic: 'working harbours', sources }) };
    const run = await startSealedRun(http, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input, where });
    const events: OpenRunMessage[] = [];
    const record = await followRun(http, run.id, (m) => events.push(m), { open: openSocket, key: published.key });
    expect(record.status, JSON.stringify(record.error)).toBe('done');
    const children = events.map((m) => m.event).find((e) => e.type === 'children') as unknown as Extract<RuntimeEvent, { type: 'children' }>;
    expect(children.results.map((r) => [r.id, r.ok])).toEqual(sources.map((_, i) => [`source-${i + 1}`, true]));
    const progress = events.flatMap((m) => (m.event.type === 'child-progress' ? [(m.event as unknown as { progress: ChildProgress }).progress] : []));
    return { progress, childIds: sources.map((_, i) => `source-${i + 1}`), published, sessionId };
  }

  test('a survey resumed on the cloud worker in the space plans its children over the space\'s nodes from there, and follows the plan', async () => {
    const { progress, childIds, published, sessionId } = await surveyOnRelay({ space, node: embeddedId }, 6);
    // The device nodes were planned with the embedded worker, which has a lane only for each slot beyond the one its
    // parent holds; the six children split over them in proportion to each one's measured speed (a node measured
    // much slower than the embedded worker's lanes may rightly be planned none).
    const { planned } = expectPlanFollowed(progress, childIds);
    const attached = await listSpace(relay.url, space); // (a node killed by an earlier test is gone)
    for (const w of attached.filter((x) => x.kind === 'device')) expect(planned.map((n) => n.id)).toContain(w.id);
    const embeddedLanes = planned.find((n) => n.id === embeddedId)?.lanes ?? 0;
    const slots = attached.find((w) => w.id === embeddedId)!.profile.slots;
    expect(embeddedLanes).toBe(Math.min(4, slots - 1));
    // The parent went on to the end with them, and published its final state.
    const fetched = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, fetched);
    const session = await Session.open(fetched, sessionId);
    const state = (await readHostState(session, await session.head())).loop;
    expect(state.status).toBe('done');
  }, 300_000);

  test('a run moved to the cloud worker with its sender\'s children scope keeps the sender\'s budget: the priced worker gets no child', async () => {
    // Pinned to the embedded worker with no space of its own (as a page moves a session to the cloud), its children
    // may use the space and the cloud, within $0 a step: the embedded worker charges for output, so only devices.
    const { progress, childIds } = await surveyOnRelay({ node: embeddedId, children: { space, cloud: true, maxCostUsd: 0 } }, 4);
    const { planned, ran } = expectPlanFollowed(progress, childIds);
    const devices = (await listSpace(relay.url, space)).filter((x) => x.kind === 'device').map((w) => w.id);
    expect(planned.map((n) => n.id).sort()).toEqual([...devices].sort());
    expect([...ran].every((id) => devices.includes(id))).toBe(true);
  }, 300_000);

  test('the agent worker\'s API with a parallel config runs the children on the space\'s nodes and streams their progress', async () => {
    const api = createAgentApi<string>({ createEngine: (path) => tinyEngine(path), openSocket });
    const events: RunnerEvent[] = [];
    api.subscribe((e) => events.push(e));
    const components = Object.fromEntries(await Promise.all([parts.survey, parts.docs, parts.notes].map(async (id) => [id, await componentFiles(parts.library.ids.get(id)!)] as const)));
    try {
      unwrap(await api.start({ components, agent: parts.survey, tools: [parts.docs, parts.notes], engine: model, sampling, parallel: { relayUrl: relay.url, space, cloud: true } }));
      const sources = generatedSources(4);
      const status = unwrap(await api.send({ type: 'start', task: JSON.stringify({ topic: 'working harbours', sources }) }));
      expect(status.state.status).toBe('done');
      const children = events.find((e): e is Extract<RuntimeEvent, { type: 'children' }> => e.type === 'children')!;
      expect(children.results.map((r) => [r.id, r.ok])).toEqual(sources.map((_, i) => [`source-${i + 1}`, true]));
      const progress = events.flatMap((e) => (e.type === 'child-progress' ? [e.progress] : []));
      expect(progress[0]).toMatchObject({ type: 'nodes' });
      expect(progress.filter((p) => p.type === 'child-done').map((p) => (p as { child: string }).child).sort()).toEqual(children.results.map((r) => r.id).sort());
      // Progress arrives while the step runs, before the step's own `children` event.
      expect(events.findIndex((e) => e.type === 'child-progress')).toBeLessThan(events.indexOf(children));
      // A parallel config that names a space secret instead of its id is refused before anything runs.
      // So are a host that is not a node id and a budget that is not dollars.
      for (const parallel of [{ relayUrl: relay.url, space: 'not a space id' }, { relayUrl: relay.url, space, host: 'phone' }, { relayUrl: relay.url, space, maxCostUsd: -1 }]) {
        const bad = await api.start({ components, agent: parts.survey, tools: [parts.docs], engine: model, parallel });
        expect(bad, JSON.stringify(parallel)).toMatchObject({ error: { code: 'runtime/bad-input', message: expect.stringMatching(/parallel\.(space|host|maxCostUsd)/) } });
      }
    } finally {
      await api.close();
    }
  }, 300_000);
});

/** A local port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
