/**
 * The worker protocol and the relay's dispatcher, spoken by hand over a real WebSocket (no model needed): a run
 * goes to an attached worker with everything it needs — its key sealed to that worker alone; only the worker a run
 * is assigned to can write into its log, and only sealed events; a worker that goes silent is given up on after
 * three missed heartbeats and its run moves to another the key was sealed to, with the original input when nothing
 * was published; a stop reaches the worker; a worker of another protocol version is refused; a run started with no
 * worker at all is refused with 503 JSON. Spaces: device nodes (no worker token, membership proven over the relay's
 * challenge) get only their space's runs and are listed only to their space; a run pinned to a node fails with
 * relay/node-left when the node goes, an unpinned one moves to another node of the space.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import {
  ErrorBodySchema,
  RelayHttp,
  RunRecordSchema,
  WORKER_CLOSE,
  WorkerListSchema,
  openRunInput,
  publishSession,
  workerPaths,
  type PublishResult,
  SPACE_HEADER,
  createSpaceSecret,
  spaceCredentials,
  type RunEvent,
  type RunPlacement,
} from '../../src/core/protocol/index.ts';
import { deriveSessionKeys } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { FakeWorker, TOKEN, followEvents, runRequest } from './api/fake-worker.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';
import { waitFor } from '../support/wait.ts';

const HEARTBEAT_MS = 200;

describe('the worker protocol and the dispatcher', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let published: PublishResult;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, heartbeatMs: HEARTBEAT_MS });
    const store = createMemoryStore();
    const { session } = await writeSession(store, 2);
    published = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  const startRun = (text: string, where?: RunPlacement, to?: readonly FakeWorker[]): Promise<Response> => runRequest(relay.url, published, { type: 'user', text }, where, to);
  const events = async (runId: string) => (await followEvents(relay.url, runId, published.key)).map((m) => ({ seq: m.seq, event: m.event as RunEvent }));
  const list = async (space?: string) => v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list, { headers: space ? { [SPACE_HEADER]: space } : {} })).json()).workers;
  const names = async (space?: string): Promise<string[]> => (await list(space)).map((w) => w.profile.name).sort();

  test('no worker attached: starting a run is refused with 503 JSON that says how to attach one', async () => {
    const res = await startRun('hello');
    expect(res.status).toBe(503);
    const body = v.parse(ErrorBodySchema, await res.json());
    expect(body.error.code).toBe('relay/no-worker');
    expect(body.error.message).toMatch(/ferry worker --relay/);
  });

  test('a worker of another protocol version is refused and closed', async () => {
    const w = await FakeWorker.attach(relay.url, 'old', 99);
    expect(w.refused).toMatchObject({ type: 'refused', error: { code: 'relay/worker-protocol' } });
    expect(await w.closed).toBe(WORKER_CLOSE.refused);
    expect(await names()).toEqual([]);
  });

  test('assign with the key sealed to that worker, sealed events from the assigned worker only, a silent worker is dropped and its run moves with its input, stop', async () => {
    const a = await FakeWorker.attach(relay.url, 'a');
    const b = await FakeWorker.attach(relay.url, 'b');
    const res = await startRun('first message');
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const assign = await a.assigned();
    expect(assign).toMatchObject({ run: run.id, attempt: 1, request: { snapshot: published.snapshot.id, input: { type: 'sealed' } } });
    // The key a was handed opens with a's key pair only; the input opens with the session key.
    expect(await a.keys.open(assign.request.key, published.snapshot.id)).toEqual(published.key);
    await expect(b.keys.open(assign.request.key, published.snapshot.id)).rejects.toMatchObject({ code: 'relay/bad-sealed-key' });
    expect(await openRunInput(await deriveSessionKeys(published.key), published.snapshot.id, assign.request.input)).toEqual({ type: 'user', text: 'first message' });
    await a.report(assign, { type: 'resumed', from: 'a' });

    // b has no business in this run: what it says about it is ignored. Plain events are dropped too.
    b.send({ type: 'event', run: run.id, event: { type: 'sealed', box: 'AAAA' } });
    b.send({ type: 'finished', run: run.id, status: 'done' });
    a.send({ type: 'event', run: run.id, event: { type: 'sealed', box: Buffer.from('plain text, not sealed').toString('base64url') } });
    await a.report(assign, { type: 'token', text: 'from a' });
    await waitFor('the events from worker a', async () => (expect((await events(run.id)).map((m) => m.event)).toEqual([{ type: 'resumed', from: 'a' }, { type: 'token', text: 'from a' }]), true));

    // a stops heartbeating (hung, not closed): three periods later the relay drops it and b gets the run, with the
    // original input since nothing was published meanwhile.
    a.beating = false;
    const moved = await b.assigned();
    expect(moved).toMatchObject({ run: run.id, attempt: 2, request: { input: assign.request.input } });
    expect(await b.keys.open(moved.request.key, published.snapshot.id)).toEqual(published.key);
    expect(await a.closed).toBe(1006);
    expect(await names()).toEqual(['b']);
    // a's words no longer count; b's do, and the log continues in order.
    await b.report(moved, { type: 'resumed', from: 'b' });
    await waitFor('five events', async () => (expect((await events(run.id)).length).toBe(5), true));
    const log = await events(run.id);
    expect(log.map((m) => m.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(log.map((m) => m.event.type)).toEqual(['resumed', 'token', 'worker-lost', 'reassigned', 'resumed']);
    expect(log[2]!.event.reason).toMatch(/no heartbeat/);
    expect(log[3]!.event).toMatchObject({ name: 'b', attempt: 2 });

    // Stop reaches b; its `finished` ends the run, and the stop answers with the final record.
    const stopping = fetch(`${relay.url}/api/v2/runs/${run.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${published.writeToken}` } });
    await b.next((m) => m.type === 'stop' && m.run === run.id);
    b.send({ type: 'finished', run: run.id, status: 'stopped' });
    expect(v.parse(RunRecordSchema, await (await stopping).json())).toMatchObject({ status: 'stopped', events: 5 });
    b.close();
    await b.closed;
  });

  test('a run\'s events take its read capability: its id alone reads nothing', async () => {
    const w = await FakeWorker.attach(relay.url, 'reader');
    const run = v.parse(RunRecordSchema, await (await startRun('private words')).json());
    const assign = await w.assigned();
    await w.report(assign, { type: 'reply', text: 'private words back' });
    for (const protocols of [[], ['ferry-run-events.2'], ['ferry-run-events.2', `ferry-cap.${'A'.repeat(43)}`]]) {
      const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/api/v2/runs/${run.id}/events`, protocols);
      ws.on('error', () => undefined);
      const status = await new Promise<number>((resolve) => {
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
      });
      expect(status, protocols.join(',')).toBeGreaterThanOrEqual(401);
      ws.terminate();
    }
    expect((await events(run.id)).map((m) => m.event)).toEqual([{ type: 'reply', text: 'private words back' }]);
    w.send({ type: 'finished', run: run.id, status: 'idle' });
    w.close();
    await w.closed;
  });

  test('a malformed message, or anything before hello, closes the connection with 1008', async () => {
    for (const first of ['not json', JSON.stringify({ type: 'heartbeat' }), JSON.stringify({ type: 'event', run: 'x', event: {} })]) {
      const ws = new WebSocket(`${relay.url.replace('http', 'ws')}${workerPaths.connect}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send(first);
      expect(await new Promise<number>((resolve) => ws.once('close', resolve))).toBe(1008);
    }
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  });

  test('spaces: device nodes get only their space\'s runs, are listed only to it, and a pinned run fails when its node goes', async () => {
    const [m1, m2] = await Promise.all([spaceCredentials(createSpaceSecret()), spaceCredentials(createSpaceSecret())]);
    const [s1, s2] = [m1.id, m2.id];
    // No token and no space: refused, with what to do.
    const stranger = await FakeWorker.device(relay.url, 'stranger', undefined);
    expect(stranger.refused).toMatchObject({ type: 'refused', error: { code: 'relay/token-required' } });
    expect(await stranger.closed).toBe(WORKER_CLOSE.refused);

    const cloud = await FakeWorker.attach(relay.url, 'cloud');
    const phone = await FakeWorker.device(relay.url, 'phone', m1);
    const laptop = await FakeWorker.device(relay.url, 'laptop', m1);
    const other = await FakeWorker.device(relay.url, 'other', m2);
    expect(await names()).toEqual(['cloud']);
    expect(await names(s1)).toEqual(['cloud', 'laptop', 'phone']);
    expect((await list(s2)).map((w) => [w.profile.name, w.kind])).toEqual([['cloud', 'cloud'], ['other', 'device']]);
    expect((await fetch(relay.url + workerPaths.list, { headers: { [SPACE_HEADER]: 'not-a-space' } })).status).toBe(400);

    // No placement: a cloud worker, never a device node (even an idle one).
    const plain = v.parse(RunRecordSchema, await (await startRun('to the cloud')).json());
    expect((await cloud.assigned()).run).toBe(plain.id);
    cloud.send({ type: 'finished', run: plain.id, status: 'idle' });

    // Pinned to the laptop: only the laptop hears of it; when the laptop goes, the run fails with relay/node-left.
    const pinned = v.parse(RunRecordSchema, await (await startRun('to the laptop', { space: s1, node: laptop.id })).json());
    expect((await laptop.assigned()).request.where).toEqual({ space: s1, node: laptop.id });
    laptop.close();
    await laptop.closed;
    for (let i = 0; i < 50 && (await (await fetch(`${relay.url}/api/v2/runs/${pinned.id}`)).json() as { status: string }).status === 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${pinned.id}`)).json())).toMatchObject({ status: 'failed', error: { code: 'relay/node-left' } });
    expect(phone.received.some((m) => m.type === 'assign')).toBe(false);

    // A pin to a node of another space (or one that is gone) is refused before anything starts.
    for (const where of [{ space: s1, node: other.id }, { space: s1, node: laptop.id }]) {
      const res = await startRun('nowhere', where, [other, laptop]);
      expect(res.status).toBe(409);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe('relay/unknown-node');
    }
    // "My devices" in a space nobody offers a node in: 503 with what to do.
    const empty = await startRun('nobody', { space: (await spaceCredentials(createSpaceSecret())).id, cloud: false });
    expect(empty.status).toBe(503);
    expect(v.parse(ErrorBodySchema, await empty.json()).error.message).toMatch(/Offer this device as a node/);

    // My devices only: the space's node gets it, never the cloud or another space; it moves on within the space.
    const laptop2 = await FakeWorker.device(relay.url, 'laptop-again', m1);
    const mine = v.parse(RunRecordSchema, await (await startRun('my devices', { space: s1, cloud: false })).json());
    expect((await phone.assigned()).run).toBe(mine.id);
    phone.close();
    expect((await laptop2.assigned()).run).toBe(mine.id);
    expect(cloud.received.filter((m) => m.type === 'assign')).toHaveLength(1);
    expect(other.received.some((m) => m.type === 'assign')).toBe(false);
    laptop2.send({ type: 'finished', run: mine.id, status: 'idle' });
    for (const w of [cloud, other, laptop2]) w.close();
    await Promise.all([cloud.closed, other.closed, laptop2.closed, phone.closed]);
  });

  test("a snapshot's next run goes where its last one ran while that worker has a free slot (its KV, a warmed move), else to the least loaded", async () => {
    const http = new RelayHttp({ baseUrl: relay.url });
    const snapshot = async (): Promise<PublishResult> => {
      const store = createMemoryStore();
      return publishSession(store, (await writeSession(store, 1)).session.id, http);
    };
    const [s, t] = [await snapshot(), await snapshot()];
    const a = await FakeWorker.attach(relay.url, 'a');
    const b = await FakeWorker.attach(relay.url, 'b');
    const start = async (target: PublishResult): Promise<string> => v.parse(RunRecordSchema, await (await runRequest(relay.url, target, { type: 'resume' })).json()).id;
    const holder = async (run: string): Promise<string> => {
      const assigned = (w: FakeWorker) => w.received.some((m) => m.type === 'assign' && m.run === run);
      await waitFor(`run ${run} assigned`, () => assigned(a) || assigned(b));
      return assigned(a) ? 'a' : 'b';
    };
    const finish = async (w: FakeWorker, run: string): Promise<void> => {
      w.send({ type: 'finished', run, status: 'idle' });
      await waitFor(`run ${run} ended`, async () => v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run}`)).json()).status === 'idle');
    };
    // a is busy with t, so s's first run goes to b; both then end, and both workers are idle.
    const busy = await start(t);
    expect(await holder(busy)).toBe('a');
    const first = await start(s);
    expect(await holder(first)).toBe('b');
    await finish(a, busy);
    await finish(b, first);
    // Idle both, s goes back to b (the least loaded would be a, attached first); t to a.
    const second = await start(s);
    expect(await holder(second)).toBe('b');
    const other = await start(t);
    expect(await holder(other)).toBe('a');
    await finish(a, other);
    // b has no free slot now: s's next run goes to the least loaded instead.
    const third = await start(s);
    expect(await holder(third)).toBe('a');
    await finish(a, third);
    await finish(b, second);
    for (const w of [a, b]) w.close();
    await Promise.all([a.closed, b.closed]);
  });
});
