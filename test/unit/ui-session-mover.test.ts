/**
 * A session's stay in the cloud as the PWA's SessionMover (src/browser/session-mover.ts) lives it, against an
 * in-process relay whose embedded worker runs the built-in assistant on the generated model (node-llama-cpp):
 * - every checkpoint the cloud run publishes is copied into the device's store before its `published` event is
 *   passed on, so the transcript and the tree can follow live;
 * - a page that dies mid-run leaves a record from which a new mover (after the reload) catches up — every event
 *   from the recorded seq, none missing — and follows the run to its end;
 * - Stop hands the cloud run back (checkpointed, published) while the session stays in the cloud; the next message
 *   starts a new run; Bring back takes the session home to an agent thread;
 * - a stream that drops is followed again from the next event;
 * - a damaged record is refused with a typed error.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import path from 'node:path';
import { WebSocket as WsWebSocket } from 'ws';
import { AgentThread } from '../../server/runtime/agent-host.ts';
import { componentFiles } from '../../server/runtime/node-tools.ts';
import { componentId, loadBuiltComponent } from '../../server/runtime/node-components.ts';
import { buildComponents } from '../../scripts/components/build.ts';
import { RelayClient, type PublishedSnapshot, type RunMessage } from '../../src/browser/relay-client.ts';
import { restoreCloudState, serializeCloudState, SessionMover, type CloudState, type PlacedEvent } from '../../src/browser/session-mover.ts';
import { FerryError } from '../../src/core/errors.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import type { ComponentFiles } from '../../src/core/runtime/tool-worker.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../src/core/store/index.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';
import { componentsDir, startDeviceNode } from './parallel/space-nodes.ts';
import { openComponentLibrary } from '../../server/relay/component-library.ts';
import { createSpaceSecret, spaceIdOf } from '../../src/core/protocol/index.ts';
import { exportSession, importSession } from '../../src/core/snapshot/index.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

const root = path.join(import.meta.dirname, '..', '..');
/** Long replies: a cloud run lasts long enough (node-llama-cpp decodes ~2,000 tok/s here) to stop and to cut. */
const REPLY_TOKENS = 1500;
const TIMEOUT = 240_000;

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let client: RelayClient;
let engine: Engine;
let modelPath: string;
let components: Record<string, ComponentFiles>;
let thread: AgentThread;
/** The device's store (the page's IndexedDB in the app) and the session on it. */
const device = createMemoryStore();
let sessionId: string;
let published: PublishedSnapshot;
/** A new session of the assistant agent in `store` (for a test that needs its context empty). */
let newSession: (store: Store) => Promise<string>;

beforeAll(async () => {
  // Node 20 has no WebSocket global; the browser's relay client uses the standard one.
  globalThis.WebSocket ??= WsWebSocket as unknown as typeof WebSocket;
  const built = await buildComponents({ srcDir: path.join(root, 'components'), outDir: path.join(root, 'components', 'dist'), witDir: path.join(root, 'components', 'wit'), names: ['assistant', 'notes'] });
  const ids = await Promise.all(built.map((b) => componentId(b.dir)));
  components = Object.fromEntries(await Promise.all(built.map(async (b, i) => [ids[i]!, await componentFiles(b.dir)] as const)));
  dirs = await makeTempDirs();
  modelPath = await tinyModelFile();
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: modelPath, componentDirs: [path.join(root, 'components', 'dist')] });
  client = new RelayClient(relay.url);
  engine = await tinyEngine(modelPath);
  const loaded = new Map(await Promise.all(built.map(async (b, i) => [ids[i]!, await loadBuiltComponent(b.dir)] as const)));
  newSession = async (store) => {
    const runtime = await AgentRuntime.create(store, { engine, load: async (id) => loaded.get(id)!, sampling: { maxTokens: REPLY_TOKENS, temperature: 0, seed: 0 } }, { agent: ids[0]!, tools: [ids[1]!] });
    await runtime.dispose();
    return runtime.session.id;
  };
  sessionId = await newSession(device);
  published = await client.publish(device, sessionId);
  thread = new AgentThread();
}, TIMEOUT);

afterAll(async () => {
  await thread?.terminate();
  await relay?.close();
  await engine?.dispose();
  await dirs?.cleanup();
});

/**
 * The relay client over a connection that drops once, after `after` events of a run's stream: the real stream is
 * closed there and the caller gets what a lost connection gives it (relay/stream-lost, with the seq to go on from).
 */
class DroppingRelay extends RelayClient {
  dropped = 0;

  constructor(url: string, private readonly after: number) {
    super(url);
  }

  override followRun(runId: string, onMessage: (m: RunMessage) => void, opts: { from?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.dropped > 0) return super.followRun(runId, onMessage, opts);
    this.dropped++;
    const cut = new AbortController();
    opts.signal?.addEventListener('abort', () => cut.abort(), { once: true });
    let seen = 0;
    let next = opts.from ?? 0;
    return super.followRun(runId, (m) => {
      if (seen++ >= this.after) return cut.abort();
      next = m.seq + 1;
      onMessage(m);
    }, { ...opts, signal: cut.signal }).then(() => {
      if (!opts.signal?.aborted) throw new FerryError('relay/stream-lost', `The run's event stream was lost (connection reset); follow it again from seq ${next}.`, { details: { next } });
    });
  }
}

/** A mover as the page makes one, on `store`, with what it saved and heard (and when it synced) kept for the test. */
function mover(store: Store, relayClient: RelayClient = client) {
  const records: (CloudState | null)[] = [];
  const events: PlacedEvent[] = [];
  /** 'synced:<head>' after each copy into the store, 'published' when that event is passed on. */
  const order: string[] = [];
  const m = new SessionMover({
    agent: thread,
    relay: relayClient,
    reopen: (file) => thread.start({ components, engine: { kind: 'node-llama-cpp', modelPath, gpu: false, threads: 1, slots: 1, contextSize: 4096 }, file }),
    onEvent: (e) => {
      events.push(e);
      if (e.event.type === 'published') order.push('published');
    },
    sync: async (p) => {
      const { sessionId: id } = await client.open({ relay: client.http.baseUrl, snapshotId: p.snapshot.id, key: p.key }, store);
      order.push(`synced:${await (await Session.open(store, id)).head()}`);
    },
    persist: async (state) => void records.push(state),
  });
  const cloud = () => events.filter((e) => e.where === 'cloud').map((e) => e.event);
  return { m, records, events, order, cloud, tokens: () => cloud().filter((e) => e.type === 'token').length };
}

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every message of a run's log, read once it has ended. */
function runLog(runId: string): Promise<RunMessage[]> {
  const messages: RunMessage[] = [];
  return client.followRun(runId, (m) => messages.push(m)).then(() => messages);
}

/** The generations on the session's current branch in `store`, oldest first. */
async function generations(store: Store): Promise<Extract<SessionEvent, { type: 'generation' }>[]> {
  const history = await (await Session.open(store, sessionId)).history();
  return history.reverse().flatMap((h) => h.checkpoint.events.filter((e): e is Extract<SessionEvent, { type: 'generation' }> => e.type === 'generation'));
}

describe('a session in the cloud, followed by the SessionMover', () => {
  let runId = '';
  let after: ReturnType<typeof mover>;

  test('a page that dies mid-run: the next one catches up from its record and follows the run to the end, each checkpoint in the store before its "published" event', async () => {
    const before = mover(device);
    await before.m.resumeCloud({ published, run: null });
    expect(before.m.placement).toBe('cloud');
    const sent = before.m.send({ type: 'start', task: 'Tell me a long story about a ferry.' });
    await until('tokens from the cloud', () => before.tokens() >= 20);
    // The tab dies: its stream is gone, the run goes on in the cloud, and the record says where to pick it up.
    before.m.close();
    await sent;
    const record = before.records.at(-1);
    expect(record?.run).toMatchObject({ from: 0 });
    runId = record!.run!.id;
    expect(before.order.filter((o) => o === 'published')).toEqual([]);

    // The reload: a new mover on the same store takes it up from the record (as IndexedDB kept it).
    after = mover(device);
    await after.m.resumeCloud(restoreCloudState(serializeCloudState(record!)));
    expect(after.m.placement).toBe('cloud');
    expect(after.m.running).toBe(true);
    await after.m.settled();
    expect(after.m.running).toBe(false);

    const log = await runLog(runId);
    expect(log.at(-1)?.event.type).not.toBe('error');
    // Every event of the run, in order, none missing (the tokens the dead page had seen come again).
    expect(after.cloud()).toEqual(log.map((m) => m.event));
    expect(after.tokens()).toBe(REPLY_TOKENS);
    // Each published checkpoint was in the store before its event went on, and the last is the store's head now.
    const publishes = log.filter((m) => m.event.type === 'published').length;
    expect(publishes).toBeGreaterThan(0);
    expect(after.order.filter((o) => o === 'published')).toHaveLength(publishes);
    after.order.forEach((o, i) => o === 'published' && expect(after.order[i - 1]).toMatch(/^synced:/));
    const lastCheckpoint = log.filter((m) => m.event.type === 'checkpoint').at(-1)!.event.id;
    expect(after.order.at(-2)).toBe(`synced:${lastCheckpoint}`);
    expect(await (await Session.open(device, sessionId)).head()).toBe(lastCheckpoint);
    const gens = await generations(device);
    expect(gens.map((g) => [g.engine.id, g.tokens.length])).toEqual([['node-llama-cpp', REPLY_TOKENS]]);
    // The run is over: a reload now finds the session idle in the cloud.
    expect(after.records.at(-1)).toMatchObject({ run: null });
  }, TIMEOUT);

  test('catching up from the middle of a run\'s log delivers exactly the events from that seq', async () => {
    const log = await runLog(runId);
    const from = log.findIndex((m) => m.event.type === 'published') + 1;
    expect(from).toBeGreaterThan(0);
    const fresh = createMemoryStore();
    const late = mover(fresh);
    await late.m.resumeCloud({ published, run: { id: runId, from } });
    await late.m.settled();
    expect(late.cloud()).toEqual(log.slice(from).map((m) => m.event));
    // Its store caught up with the snapshot first, so the whole session is there.
    expect((await generations(fresh)).map((g) => g.tokens.length)).toEqual([REPLY_TOKENS]);
    late.m.close();
  }, TIMEOUT);

  test('Stop hands the cloud run back — checkpointed and published — while the session stays in the cloud; the next message starts a new run', async () => {
    const sent = after.m.send({ type: 'user', text: 'Another long one, please.' });
    const tokensBefore = after.tokens();
    await until('tokens of the new run', () => after.tokens() >= tokensBefore + 20);
    const stopped = after.records.at(-1)!.run!.id;
    expect(stopped).not.toBe(runId);
    await after.m.stop();
    await sent;
    expect(after.m.placement).toBe('cloud');
    expect(after.m.running).toBe(false);
    expect((await client.http.getRun(stopped)).status).toBe('stopped');
    // The cut generation reached the device's store through the hand-back's published checkpoint.
    const cut = (await generations(device)).at(-1)!;
    expect(cut.finish).toBe('abort');
    expect(cut.tokens.length).toBeGreaterThan(0);
    expect(cut.tokens.length).toBeLessThan(REPLY_TOKENS);
    expect(after.records.at(-1)).toMatchObject({ run: null });

    await after.m.send({ type: 'user', text: 'Go on.' });
    const next = after.records.findLast((r) => r?.run)!.run!.id;
    expect(next).not.toBe(stopped);
    expect((await client.http.getRun(next)).status).toBe('idle');
    expect((await generations(device)).at(-1)).toMatchObject({ finish: 'length' });
  }, TIMEOUT);

  test('Bring back takes the session home: the agent thread reopens it with everything the cloud wrote', async () => {
    const status = await after.m.bringBack();
    expect(status.sessionId).toBe(sessionId);
    expect(after.m.placement).toBe('device');
    expect(after.records.at(-1)).toBeNull();
    const home = createMemoryStore();
    const { importSession } = await import('../../src/core/snapshot/index.ts');
    await importSession(home, await thread.exportSession());
    expect(await generations(home)).toEqual(await generations(device));
  }, TIMEOUT);

  test('a stream that drops mid-run is followed again from the next event: nothing missed, nothing twice', async () => {
    const relayThatDrops = new DroppingRelay(relay.url, 30);
    const store = createMemoryStore();
    const flaky = mover(store, relayThatDrops);
    await flaky.m.resumeCloud({ published, run: null });
    await flaky.m.send({ type: 'user', text: 'One more, over a poor connection.' });
    expect(relayThatDrops.dropped).toBe(1);
    const id = flaky.records.findLast((r) => r?.run)!.run!.id;
    expect(flaky.cloud()).toEqual((await runLog(id)).map((m) => m.event));
    expect((await generations(store)).at(-1)).toMatchObject({ engine: { id: 'node-llama-cpp' }, finish: 'length' });
    flaky.m.close();
  }, TIMEOUT);

  test('the device it was moved to leaves mid-run: the session comes back here by itself, from its last checkpoint, and says so', async () => {
    // A new session (the shared one's context is full by now), open in the agent thread; a device node of a fresh
    // space to move it to.
    const store = createMemoryStore();
    const id = await newSession(store);
    await thread.start({ components, engine: { kind: 'node-llama-cpp', modelPath, gpu: false, threads: 1, slots: 1, contextSize: 4096 }, file: await exportSession(store, id) });
    const space = await spaceIdOf(createSpaceSecret());
    const laptop = await startDeviceNode(relay.url, space, 'laptop', modelPath, await openComponentLibrary([componentsDir]));
    const away = mover(store);
    try {
      await away.m.moveToCloud({ space, node: laptop.id, cloud: false }, 'laptop');
      expect(away.m.awayOn).toBe('laptop');
      const sent = away.m.send({ type: 'user', text: 'A long one on the laptop, please.' });
      await until('tokens from the laptop', () => away.tokens() >= 20);
      await laptop.kill();
      await sent;
      await until('the session back on this device', () => away.m.placement === 'device');
      // Said once, in words; the relay's "resume it elsewhere" is not passed on as a failure.
      expect(away.cloud().filter((e) => e.type === 'notice').map((e) => e.message)).toEqual(['laptop running this session left, so it came back to this device from its last checkpoint.']);
      expect(away.cloud().filter((e) => e.type === 'error')).toEqual([]);
      expect(away.records.at(-1)).toBeNull();
      // The agent thread holds it again at what the laptop last published (the cut step never was).
      const home = createMemoryStore();
      await importSession(home, await thread.exportSession());
      const snapshot = createMemoryStore();
      const opened = await client.open({ relay: client.http.baseUrl, snapshotId: away.m.published!.snapshot.id, key: away.m.published!.key }, snapshot);
      expect(await (await Session.open(home, id)).head()).toBe(await (await Session.open(snapshot, opened.sessionId)).head());
    } finally {
      away.m.close();
      await laptop.close();
    }
  }, TIMEOUT);

  test('a record that cannot be read is refused with a typed error', () => {
    const good = serializeCloudState({ published, run: { id: runId, from: 3 } });
    expect(restoreCloudState(good)).toEqual({ published: { snapshot: published.snapshot, writeToken: published.writeToken, key: published.key }, run: { id: runId, from: 3 } });
    expect(good).not.toContain('"key":[');
    // On one of the space's devices: where and its name come back too.
    const where = { space: 'a'.repeat(43), node: 'b'.repeat(16), cloud: false };
    const onDevice = serializeCloudState({ published, run: null, where, name: 'laptop' });
    expect(restoreCloudState(onDevice)).toMatchObject({ run: null, where, name: 'laptop' });
    for (const bad of ['{', JSON.stringify({ v: 2 }), good.replace(runId, 'not-a-run'), good.replace(/"from":3/, '"from":-1'), onDevice.replace('"laptop"', '""')]) {
      expect(() => restoreCloudState(bad)).toThrowError(expect.objectContaining({ code: 'app/bad-cloud-record' }));
    }
  });
});
