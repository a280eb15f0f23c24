/**
 * A session on a relay's node as the core's RelayRunner follows it, against an in-process relay whose embedded worker
 * runs the built-in assistant on the generated model (node-llama-cpp):
 * - every checkpoint the node publishes is copied into the local store before its `checkpoint` event is passed on;
 * - a page that dies mid-run leaves a placement record from which a new runner (after the reload) catches up — every
 *   event from the recorded seq, none missing — and follows the run to its end;
 * - stop hands the run back (checkpointed, published, copied here) while the session stays on the relay; the next
 *   message starts a new run; `move` brings it home to an agent thread, which opens it at what the relay wrote;
 * - moved there mid-reply, a message sent right after each reply there is answered there, past the context;
 * - a stream that drops is followed again from the next event;
 * - the node the run was pinned to leaves: the runner says so through onNodeLeft (no error), from the last checkpoint;
 * - a damaged record is refused with a typed error.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import path from 'node:path';
import WebSocket from 'ws';
import { AgentThread } from '../../../server/runtime/agent-host.ts';
import { componentFiles } from '../../../server/runtime/node-tools.ts';
import { componentId, loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import { buildComponents } from '../../../scripts/components/build.ts';
import { openComponentLibrary } from '../../../server/relay/component-library.ts';
import { AgentRunner, RelayRunner, move, readRunEvent, restoreRelayPlacement, serializeRelayPlacement, type RelayPlacement, type RunnerEvent } from '../../../src/core/host/index.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { followRun, type StreamSocket } from '../../../src/core/parallel/index.ts';
import { RelayHttp, createSpaceSecret, forgetRelayBuilds, publishSession, spaceCredentials, type OpenRunMessage, type PublishedSnapshot } from '../../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import type { ComponentFiles } from '../../../src/core/runtime/tool-worker.ts';
import { Session, type SessionEvent } from '../../../src/core/session/index.ts';
import { exportSession } from '../../../src/core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile } from '../../support/runtime-agent.ts';
import { waitFor } from '../../support/wait.ts';
import { componentsDir, startDeviceNode } from '../parallel/space-nodes.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

const root = path.join(import.meta.dirname, '..', '..', '..');
/** Long replies: a run lasts long enough (node-llama-cpp decodes ~2,000 tok/s here) to stop and to cut. */
const REPLY_TOKENS = 1500;
const TIMEOUT = 240_000;
const FAILED = { code: 'relay/bring-back-failed' as const, message: 'The session could not come back' };

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let http: RelayHttp;
let engine: Engine;
let modelPath: string;
let components: Record<string, ComponentFiles>;
let thread: AgentThread;
/** The device's store (the page's IndexedDB in the app) and the session on it, published once. */
const device = createMemoryStore();
let sessionId: string;
let published: PublishedSnapshot;
let newSession: (store: Store) => Promise<string>;
/** Opens the session in `store` here, as the device's runtime would. */
let openHere: (store: Store, id: string) => Promise<AgentRuntime>;

const openSocket = (url: string, protocols?: string[]) => new WebSocket(url, protocols) as unknown as StreamSocket;

beforeAll(async () => {
  const built = await buildComponents({ srcDir: path.join(root, 'components'), outDir: path.join(root, 'components', 'dist'), witDir: path.join(root, 'components', 'wit'), names: ['assistant', 'notes'] });
  const ids = await Promise.all(built.map((b) => componentId(b.dir)));
  components = Object.fromEntries(await Promise.all(built.map(async (b, i) => [ids[i]!, await componentFiles(b.dir)] as const)));
  dirs = await makeTempDirs();
  modelPath = await tinyModelFile();
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: modelPath, componentDirs: [path.join(root, 'components', 'dist')] });
  http = new RelayHttp({ baseUrl: relay.url });
  engine = await tinyEngine(modelPath);
  const loaded = new Map(await Promise.all(built.map(async (b, i) => [ids[i]!, await loadBuiltComponent(b.dir)] as const)));
  newSession = async (store) => {
    const runtime = await AgentRuntime.create(store, { engine, load: async (id) => loaded.get(id)!, sampling: { maxTokens: REPLY_TOKENS, temperature: 0, seed: 0 } }, { agent: ids[0]!, tools: [ids[1]!] });
    await runtime.dispose();
    return runtime.session.id;
  };
  openHere = (store, id) => AgentRuntime.open(store, { engine, load: async (cid) => loaded.get(cid)!, sampling: { maxTokens: REPLY_TOKENS, temperature: 0, seed: 0 } }, id);
  sessionId = await newSession(device);
  const result = await publishSession(device, sessionId, http);
  published = { snapshot: result.snapshot, writeToken: result.writeToken, key: result.key };
  thread = new AgentThread();
}, TIMEOUT);

afterAll(async () => {
  await thread?.terminate();
  await relay?.close();
  await engine?.dispose();
  await dirs?.cleanup();
});

/**
 * A runner as the page makes one, on `store`, with what it saved and heard kept for the test; each `checkpoint` it
 * announced is checked to be in the store at that moment.
 */
function runner(store: Store, opts: { open?: typeof openSocket; where?: RelayPlacement['where']; name?: string; onNodeLeft?: () => void } = {}) {
  const records: RelayPlacement[] = [];
  const events: RunnerEvent[] = [];
  const inStore: Promise<boolean>[] = [];
  const options = {
    sessionId,
    store,
    relay: http,
    openSocket: opts.open ?? openSocket,
    onEvent: (e: RunnerEvent) => {
      events.push(e);
      if (e.type === 'checkpoint') inStore.push(store.has(e.id));
    },
    persist: async (p: RelayPlacement) => void records.push(p),
    ...(opts.where ? { where: opts.where } : {}),
    ...(opts.name ? { name: opts.name } : {}),
    ...(opts.onNodeLeft ? { onNodeLeft: opts.onNodeLeft } : {}),
  };
  return { options, records, events, inStore, tokens: () => events.filter((e) => e.type === 'token').length };
}

/** Every message of a run's log, read once it has ended. */
async function runLog(runId: string): Promise<OpenRunMessage[]> {
  const messages: OpenRunMessage[] = [];
  await followRun(http, runId, (m) => messages.push(m), { open: openSocket, key: published.key });
  return messages;
}

/** The run events a follower passes on as they are (the relay's and the node's own are read by the runner). */
function passedOn(log: readonly OpenRunMessage[]): unknown[] {
  return log.flatMap((m) => {
    const read = readRunEvent(m.event);
    return read.kind === 'event' ? [read.event] : [];
  });
}

/** The generations on the session's current branch in `store`, oldest first. */
async function generations(store: Store, id = sessionId): Promise<Extract<SessionEvent, { type: 'generation' }>[]> {
  const history = await (await Session.open(store, id)).history();
  return history.reverse().flatMap((h) => h.checkpoint.events.filter((e): e is Extract<SessionEvent, { type: 'generation' }> => e.type === 'generation'));
}

/** The session run by the agent thread, opened from `store` as it is before each run. */
function home(store: Store, id: string, onEvent: (e: RunnerEvent) => void = () => {}): AgentRunner {
  const here = new AgentRunner({
    sessionId: id,
    worker: thread,
    onEvent,
    claim: async () => thread.start({ components, engine: { kind: 'node-llama-cpp', modelPath, gpu: false, threads: 1, slots: 1, contextSize: 4096 }, file: await exportSession(store, id) }),
  });
  void thread.subscribe((e) => here.hear(e));
  return here;
}

describe('a session on the relay, followed by a RelayRunner', () => {
  let runId = '';
  let after: RelayRunner;
  let afterRig: ReturnType<typeof runner>;

  test('a page that dies mid-run: the next one catches up from its record and follows the run to the end, each checkpoint in the store before it is announced', async () => {
    const before = runner(device);
    const dying = await RelayRunner.restore({ published, run: null }, before.options);
    const sent = dying.send({ type: 'start', task: 'Tell me a long story about a ferry.' });
    await waitFor('tokens from the cloud', () => before.tokens() >= 20);
    // The tab dies: its stream is gone, the run goes on in the cloud, and the record says where to pick it up.
    await dying.close();
    await sent;
    const record = before.records.at(-1);
    expect(record?.run).toMatchObject({ from: 0 });
    runId = record!.run!.id;
    expect(before.events.filter((e) => e.type === 'checkpoint')).toEqual([]);

    // The reload: a new runner on the same store takes it up from the record (as IndexedDB kept it).
    afterRig = runner(device);
    after = await RelayRunner.restore(restoreRelayPlacement(serializeRelayPlacement(record!)), afterRig.options);
    expect(after.running).toBe(true);
    await after.settled();
    expect(after.running).toBe(false);

    const log = await runLog(runId);
    expect(log.at(-1)?.event.type).not.toBe('error');
    // Every event of the run, in order, none missing (the tokens the dead page had seen come again).
    expect(afterRig.events.filter((e) => e.type !== 'checkpoint')).toEqual(passedOn(log));
    expect(afterRig.tokens()).toBe(REPLY_TOKENS);
    // Each published checkpoint was announced once it was in the store, and the last is the store's head now.
    const publishes = log.filter((m) => m.event.type === 'published').length;
    expect(publishes).toBeGreaterThan(0);
    expect(afterRig.inStore).toHaveLength(publishes);
    expect(await Promise.all(afterRig.inStore)).toEqual(afterRig.inStore.map(() => true));
    const lastCheckpoint = log.filter((m) => m.event.type === 'checkpoint').at(-1)!.event.id;
    expect(afterRig.events.findLast((e) => e.type === 'checkpoint')).toMatchObject({ id: lastCheckpoint });
    expect(await (await Session.open(device, sessionId)).head()).toBe(lastCheckpoint);
    expect((await generations(device)).map((g) => [g.engine.id, g.tokens.length])).toEqual([['node-llama-cpp', REPLY_TOKENS]]);
    // The run is over: a reload now finds the session idle on the relay.
    expect(afterRig.records.at(-1)).toMatchObject({ run: null });
  }, TIMEOUT);

  test('catching up from the middle of a run\'s log delivers exactly the events from that seq', async () => {
    const log = await runLog(runId);
    const from = log.findIndex((m) => m.event.type === 'published') + 1;
    expect(from).toBeGreaterThan(0);
    const fresh = createMemoryStore();
    const late = runner(fresh);
    const follower = await RelayRunner.restore({ published, run: { id: runId, from } }, late.options);
    await follower.settled();
    expect(late.events.filter((e) => e.type !== 'checkpoint')).toEqual(passedOn(log.slice(from)));
    // Its store caught up with the snapshot first, so the whole session is there.
    expect((await generations(fresh)).map((g) => g.tokens.length)).toEqual([REPLY_TOKENS]);
    await follower.close();
  }, TIMEOUT);

  test('stop hands the run back — checkpointed, published, copied here — while the session stays on the relay; the next message starts a new run', async () => {
    const sent = after.send({ type: 'user', text: 'Another long one, please.' });
    const tokensBefore = afterRig.tokens();
    await waitFor('tokens of the new run', () => afterRig.tokens() >= tokensBefore + 20);
    const stopped = afterRig.records.at(-1)!.run!.id;
    expect(stopped).not.toBe(runId);
    await after.stop();
    await sent;
    expect(after.running).toBe(false);
    expect((await http.getRun(stopped)).status).toBe('stopped');
    // The cut generation is in the device's store.
    const cut = (await generations(device)).at(-1)!;
    expect(cut.finish).toBe('abort');
    expect(cut.tokens.length).toBeGreaterThan(0);
    expect(cut.tokens.length).toBeLessThan(REPLY_TOKENS);
    expect(afterRig.records.at(-1)).toMatchObject({ run: null });

    await after.send({ type: 'user', text: 'Go on.' });
    const next = afterRig.records.findLast((r) => r.run)!.run!.id;
    expect(next).not.toBe(stopped);
    expect((await http.getRun(next)).status).toBe('idle');
    expect((await generations(device)).at(-1)).toMatchObject({ finish: 'length' });
  }, TIMEOUT);

  test('a move brings the session home: the agent thread opens it with everything the relay wrote', async () => {
    const head = await (await Session.open(device, sessionId)).head();
    const here = home(device, sessionId);
    expect(await move(after, here, FAILED)).toBe(here);
    await after.close();
    const status = await thread.status();
    expect(status.sessionId).toBe(sessionId);
    expect(status.head).toBe(head);
    await here.close();
  }, TIMEOUT);

  test('moved to the relay mid-reply, then a message right after each reply there, past the context: every message is answered there', async () => {
    const store = createMemoryStore();
    const id = await newSession(store);
    const heard: RunnerEvent[] = [];
    const here = home(store, id, (e) => heard.push(e));
    const sent = here.send({ type: 'start', task: 'Tell me a long story about a ferry.' });
    await waitFor('tokens here', () => heard.filter((e) => e.type === 'token').length >= 20);
    const rig = runner(store);
    const away = new RelayRunner({ ...rig.options, sessionId: id });
    expect(await move(here, away, FAILED)).toBe(away);
    await sent;
    await here.close();
    await away.settled();
    // Each reply is long (1,500 tokens): by the third the conversation has outgrown the 4,096-token context.
    for (let n = 1; n <= 3; n++) {
      await away.send({ type: 'user', text: `Turn ${n}: tell me more.` });
      const history = await (await Session.open(store, id)).history();
      const events = history.reverse().flatMap((h) => h.checkpoint.events);
      const asked = events.findLastIndex((e) => e.type === 'user');
      expect(events[asked], `turn ${n}`).toMatchObject({ text: `Turn ${n}: tell me more.` });
      expect(events.slice(asked).some((e) => e.type === 'generation'), `turn ${n} answered`).toBe(true);
      expect(rig.events.filter((e) => e.type === 'error' || e.type === 'step-failed'), `turn ${n}`).toEqual([]);
    }
    await away.close();
  }, TIMEOUT);

  test('a stream that drops mid-run is followed again from the next event: nothing missed, nothing twice', async () => {
    let dropped = 0;
    // The first connection is cut after 30 messages, as a lost connection would (not a normal close).
    const dropping = (url: string, protocols?: string[]): StreamSocket => {
      const socket = openSocket(url, protocols);
      if (dropped > 0) return socket;
      dropped++;
      let seen = 0;
      const wrapper: StreamSocket = { onmessage: null, onclose: null, onerror: null, close: (code) => socket.close(code) };
      socket.onmessage = (e) => {
        if (++seen > 30) return;
        wrapper.onmessage?.(e);
        if (seen === 30) {
          socket.onclose = null;
          socket.close();
          wrapper.onclose?.({ code: 1006 });
        }
      };
      socket.onclose = (e) => wrapper.onclose?.(e);
      socket.onerror = (e) => wrapper.onerror?.(e);
      return wrapper;
    };
    const store = createMemoryStore();
    const flaky = runner(store, { open: dropping });
    const cloud = await RelayRunner.restore({ published, run: null }, flaky.options);
    await cloud.send({ type: 'user', text: 'One more, over a poor connection.' });
    expect(dropped).toBe(1);
    const id = flaky.records.findLast((r) => r.run)!.run!.id;
    expect(flaky.events.filter((e) => e.type !== 'checkpoint')).toEqual(passedOn(await runLog(id)));
    expect((await generations(store)).at(-1)).toMatchObject({ engine: { id: 'node-llama-cpp' }, finish: 'length' });
    await cloud.close();
  }, TIMEOUT);

  test('a listener that throws on an event is told so once, and every event after it — of this run and the next — is still handled', async () => {
    const store = createMemoryStore();
    const rig = runner(store);
    let thrown = 0;
    const onEvent = (e: RunnerEvent): void => {
      if (e.type === 'token' && thrown++ === 0) throw new Error('the page could not show a token');
      rig.options.onEvent(e);
    };
    const cloud = await RelayRunner.restore({ published, run: null }, { ...rig.options, onEvent });
    for (const text of ['A reply whose first token the page cannot show.', 'And one more.']) {
      const before = await (await Session.open(store, sessionId)).head();
      await cloud.send({ type: 'user', text });
      const events = (await (await Session.open(store, sessionId)).history()).reverse().flatMap((h) => h.checkpoint.events);
      expect(events.findLast((e) => e.type === 'user'), text).toMatchObject({ text });
      expect(await (await Session.open(store, sessionId)).head()).not.toBe(before);
    }
    expect(rig.events.filter((e) => e.type === 'error')).toEqual([expect.objectContaining({ code: 'relay/sync-failed', message: expect.stringContaining('the page could not show a token') })]);
    expect(rig.events.filter((e) => e.type === 'checkpoint').length).toBeGreaterThanOrEqual(4);
    expect(await Promise.all(rig.inStore)).not.toContain(false);
    await cloud.close();
  }, TIMEOUT);

  test('a step written here while the session is away goes up before the next run, which goes on from it', async () => {
    const store = createMemoryStore();
    const id = await newSession(store);
    const first = await publishSession(store, id, http);
    const rig = runner(store);
    const cloud = await RelayRunner.restore({ published: { snapshot: first.snapshot, writeToken: first.writeToken, key: first.key }, run: null }, { ...rig.options, sessionId: id });
    // The relay's copy has been seen; then this device writes a step of its own (a note added by the person).
    const runtime = await openHere(store, id);
    for await (const event of runtime.run({ type: 'tools', calls: [{ tool: 'notes', args: JSON.stringify({ op: 'add', title: 'Here', body: 'written on the device' }) }] })) void event;
    await runtime.dispose();
    const local = await (await Session.open(store, id)).head();
    await cloud.send({ type: 'user', text: 'What did I note?' });
    const chain = (await (await Session.open(store, id)).history()).map((h) => h.id);
    expect(chain[0]).not.toBe(local);
    expect(chain).toContain(local);
    expect(rig.events.filter((e) => e.type === 'error' || e.type === 'step-failed')).toEqual([]);
    await cloud.close();
  }, TIMEOUT);

  test('the device it runs on leaves mid-run: the runner says so, without an error, and the session comes home from its last checkpoint', async () => {
    // A new session (the shared one's context is full by now); a device node of a fresh space to move it to.
    const store = createMemoryStore();
    const id = await newSession(store);
    const credentials = await spaceCredentials(createSpaceSecret());
    const space = credentials.id;
    const laptop = await startDeviceNode(relay.url, credentials, 'laptop', modelPath, await openComponentLibrary([componentsDir]));
    let left = 0;
    const rig = runner(store, { where: { space, node: laptop.id, cloud: false }, name: 'laptop', onNodeLeft: () => left++ });
    const here = home(store, id);
    const away = new RelayRunner({ ...rig.options, sessionId: id });
    try {
      expect(await move(here, away, FAILED)).toBe(away);
      expect(away.name).toBe('laptop');
      const sent = away.send({ type: 'user', text: 'A long one on the laptop, please.' });
      await waitFor('tokens from the laptop', () => rig.tokens() >= 20);
      await laptop.kill();
      await sent;
      expect(left).toBe(1);
      // The relay's "resume it elsewhere" is not passed on as a failure.
      expect(rig.events.filter((e) => e.type === 'error')).toEqual([]);
      const back = home(store, id);
      expect(await move(away, back, FAILED)).toBe(back);
      // The store holds what the laptop last published (the cut step never was), and the thread opened it there.
      const snapshot = createMemoryStore();
      const fetched = await (await import('../../../src/core/protocol/index.ts')).fetchSnapshot(http, rig.records.at(-1)!.published.snapshot.id, rig.records.at(-1)!.published.key, snapshot);
      expect((await thread.status()).head).toBe(await (await Session.open(snapshot, fetched.sessionId)).head());
      await back.close();
    } finally {
      await away.close();
      await laptop.close();
    }
  }, TIMEOUT);

  test('a build the relay no longer ships, though its list was remembered: the run fails with relay/unknown-component, the list is asked again, and the next move carries the build', async () => {
    // A session of a test agent this relay does not ship, and a list remembered from when (as far as the device knew) it did.
    const f = await fixtures();
    const store = createMemoryStore();
    const created = await AgentRuntime.create(store, setupFor(f, engine, { sampling: { maxTokens: 8, temperature: 0, seed: 0 } }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await created.dispose();
    const id = created.session.id;
    forgetRelayBuilds(relay.url);
    const earlier = new RelayHttp({
      baseUrl: relay.url,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!String(input).endsWith('/api/v2/components')) return res;
        const { builds } = (await res.json()) as { builds: string[] };
        return Response.json({ builds: [...builds, f.ids.scribe] });
      },
    });
    await publishSession(store, id, earlier, undefined, { omitRelayBuilds: true });

    const rig = runner(store);
    const stale = new RelayRunner({ ...rig.options, sessionId: id });
    try {
      await stale.resume();
      await stale.settled();
      expect(rig.events.filter((e) => e.type === 'error')).toEqual([expect.objectContaining({ code: 'relay/unknown-component' })]);
    } finally {
      await stale.close();
    }

    // Moved again (a new snapshot): the list is asked anew, the agent's build goes along, and the run goes.
    const again = runner(store);
    const moved = new RelayRunner({ ...again.options, sessionId: id });
    try {
      await moved.send({ type: 'start', task: 'ferry river harbour' });
      expect(again.events.filter((e) => e.type === 'error')).toEqual([]);
      expect(again.tokens()).toBeGreaterThan(0);
    } finally {
      await moved.close();
    }
  }, TIMEOUT);

  test('a record that cannot be read is refused with a typed error', () => {
    const good = serializeRelayPlacement({ published, run: { id: runId, from: 3 } });
    expect(restoreRelayPlacement(good)).toEqual({ published: { snapshot: published.snapshot, writeToken: published.writeToken, key: published.key }, run: { id: runId, from: 3 } });
    expect(good).not.toContain('"key":[');
    // On one of the space's devices: where and its name come back too.
    const where = { space: 'a'.repeat(43), node: 'b'.repeat(16), cloud: false };
    const onDevice = serializeRelayPlacement({ published, run: null, where, name: 'laptop' });
    expect(restoreRelayPlacement(onDevice)).toMatchObject({ run: null, where, name: 'laptop' });
    // A record of the first format (the published record as a string of its own) still reads.
    const first = JSON.stringify({ v: 1, published: JSON.stringify(JSON.parse(good).published), run: { id: runId, from: 3 } });
    expect(restoreRelayPlacement(first)).toEqual(restoreRelayPlacement(good));
    for (const bad of ['{', JSON.stringify({ v: 3 }), good.replace(runId, 'not-a-run'), good.replace(/"from":3/, '"from":-1'), onDevice.replace('"laptop"', '""')]) {
      expect(() => restoreRelayPlacement(bad)).toThrowError(expect.objectContaining({ code: 'app/bad-cloud-record' }));
    }
  });
});
