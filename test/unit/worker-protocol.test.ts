/**
 * The worker protocol and the relay's dispatcher, spoken by hand over a real WebSocket (no model needed): a run
 * goes to an attached worker with everything it needs; only the worker a run is assigned to can write into its log;
 * a worker that goes silent is given up on after three missed heartbeats and its run moves to another, with the
 * original input when nothing was published; a stop reaches the worker; a worker of another protocol version is
 * refused; a run started with no worker at all is refused with 503 JSON. Spaces: device nodes (no worker token,
 * a space in hello) get only their space's runs and are listed only to their space; a run pinned to a node fails
 * with relay/node-left when the node goes, an unpinned one moves to another node of the space.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import {
  ErrorBodySchema,
  RelayHttp,
  RelayToWorkerSchema,
  RunMessageSchema,
  RunRecordSchema,
  WORKER_CLOSE,
  WORKER_PROTOCOL_VERSION,
  WorkerListSchema,
  publishSession,
  toBase64Url,
  workerPaths,
  type PublishResult,
  SPACE_HEADER,
  createSpaceSecret,
  spaceIdOf,
  type RelayToWorker,
  type RunPlacement,
  type RunMessage,
  type WorkerProfile,
  type WorkerToRelay,
} from '../../src/core/protocol/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

const TOKEN = 'p'.repeat(43);
const HEARTBEAT_MS = 200;

const profile = (name: string): WorkerProfile => ({ name, model: 'm', tokenizer: 't', engine: 'fake', device: 'none', contextSize: 4096, slots: 1, prefillTps: 1, decodeTps: 1 });

/** A worker spoken by hand: it records what the relay sends, and heartbeats only while `beating`. */
class FakeWorker {
  readonly received: RelayToWorker[] = [];
  beating = true;
  closed: Promise<number>;
  private readonly ws: WebSocket;
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  private constructor(url: string, hello: WorkerToRelay, token: boolean) {
    this.ws = new WebSocket(`${url.replace('http', 'ws')}${workerPaths.connect}`, token ? { headers: { authorization: `Bearer ${TOKEN}` } } : {});
    this.ws.on('open', () => this.send(hello));
    this.ws.on('message', (data) => {
      const m = v.parse(RelayToWorkerSchema, JSON.parse(String(data)));
      this.received.push(m);
      if (m.type === 'welcome') this.timer = setInterval(() => this.beating && this.send({ type: 'heartbeat' }), m.heartbeatMs);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => (clearInterval(this.timer), resolve(code))));
  }

  static async attach(url: string, name: string, protocol = WORKER_PROTOCOL_VERSION): Promise<FakeWorker> {
    return FakeWorker.#join(new FakeWorker(url, { type: 'hello', protocol, profile: profile(name) }, true));
  }

  /** A device node: no worker token; its hello names `space` (when given). */
  static async device(url: string, name: string, space: string | undefined): Promise<FakeWorker> {
    return FakeWorker.#join(new FakeWorker(url, { type: 'hello', protocol: WORKER_PROTOCOL_VERSION, profile: profile(name), ...(space ? { space } : {}) }, false));
  }

  static async #join(w: FakeWorker): Promise<FakeWorker> {
    await w.next((m) => m.type === 'welcome' || m.type === 'refused');
    return w;
  }

  get id(): string {
    const welcome = this.received.find((m) => m.type === 'welcome');
    if (!welcome) throw new Error('not welcomed');
    return welcome.worker;
  }

  async assigned(): Promise<Extract<RelayToWorker, { type: 'assign' }>> {
    return this.next((m): m is Extract<RelayToWorker, { type: 'assign' }> => m.type === 'assign');
  }

  send(m: WorkerToRelay): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The first message (already received or next) that matches. */
  async next<T extends RelayToWorker>(match: (m: RelayToWorker) => m is T): Promise<T>;
  async next(match: (m: RelayToWorker) => boolean): Promise<RelayToWorker>;
  async next(match: (m: RelayToWorker) => boolean): Promise<RelayToWorker> {
    for (;;) {
      const found = this.received.find(match);
      if (found) return found;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  close(): void {
    this.ws.close();
  }
}

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

  const startRun = (text: string, where?: RunPlacement): Promise<Response> =>
    fetch(`${relay.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'user', text }, ...(where ? { where } : {}) }),
    });
  const events = async (runId: string): Promise<RunMessage[]> => {
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/api/v1/runs/${runId}/events`);
    const out: RunMessage[] = [];
    ws.on('message', (data) => out.push(v.parse(RunMessageSchema, JSON.parse(String(data)))));
    await new Promise((resolve) => ws.once('open', resolve));
    await new Promise((resolve) => setTimeout(resolve, 100));
    ws.close();
    return out;
  };
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
    expect(w.received[0]).toMatchObject({ type: 'refused', error: { code: 'relay/worker-protocol' } });
    expect(await w.closed).toBe(WORKER_CLOSE.refused);
    expect(await names()).toEqual([]);
  });

  test('assign, events from the assigned worker only, a silent worker is dropped and its run moves with its input, stop', async () => {
    const a = await FakeWorker.attach(relay.url, 'a');
    const res = await startRun('first message');
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const assign = await a.next((m): m is Extract<RelayToWorker, { type: 'assign' }> => m.type === 'assign');
    expect(assign).toMatchObject({ run: run.id, attempt: 1, request: { snapshot: published.snapshot.id, key: toBase64Url(published.key), input: { type: 'user', text: 'first message' } } });
    a.send({ type: 'event', run: run.id, event: { type: 'resumed', from: 'a' } });

    // A second worker joins; it has no business in this run: what it says about it is ignored.
    const b = await FakeWorker.attach(relay.url, 'b');
    b.send({ type: 'event', run: run.id, event: { type: 'token', text: 'forged' } });
    b.send({ type: 'finished', run: run.id, status: 'done' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await events(run.id)).map((m) => m.event)).toEqual([{ type: 'resumed', from: 'a' }]);

    // a stops heartbeating (hung, not closed): three periods later the relay drops it and b gets the run, with the
    // original input since nothing was published meanwhile.
    a.beating = false;
    const moved = await b.next((m): m is Extract<RelayToWorker, { type: 'assign' }> => m.type === 'assign');
    expect(moved).toMatchObject({ run: run.id, attempt: 2, request: { input: { type: 'user', text: 'first message' } } });
    expect(await a.closed).toBe(1006);
    expect(await names()).toEqual(['b']);
    // a's words no longer count; b's do, and the log continues in order.
    b.send({ type: 'event', run: run.id, event: { type: 'resumed', from: 'b' } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const log = await events(run.id);
    expect(log.map((m) => m.seq)).toEqual([0, 1, 2, 3]);
    expect(log.map((m) => m.event.type)).toEqual(['resumed', 'worker-lost', 'reassigned', 'resumed']);
    expect(log[1]!.event.reason).toMatch(/no heartbeat/);
    expect(log[2]!.event).toMatchObject({ name: 'b', attempt: 2 });

    // Stop reaches b; its `finished` ends the run, and the stop answers with the final record.
    const stopping = fetch(`${relay.url}/api/v1/runs/${run.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${published.writeToken}` } });
    await b.next((m) => m.type === 'stop' && m.run === run.id);
    b.send({ type: 'finished', run: run.id, status: 'stopped' });
    expect(v.parse(RunRecordSchema, await (await stopping).json())).toMatchObject({ status: 'stopped', events: 4 });
    b.close();
    await b.closed;
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
    const [s1, s2] = await Promise.all([spaceIdOf(createSpaceSecret()), spaceIdOf(createSpaceSecret())]);
    // No token and no space: refused, with what to do.
    const stranger = await FakeWorker.device(relay.url, 'stranger', undefined);
    expect(stranger.received[0]).toMatchObject({ type: 'refused', error: { code: 'relay/token-required' } });
    expect(await stranger.closed).toBe(WORKER_CLOSE.refused);

    const cloud = await FakeWorker.attach(relay.url, 'cloud');
    const phone = await FakeWorker.device(relay.url, 'phone', s1);
    const laptop = await FakeWorker.device(relay.url, 'laptop', s1);
    const other = await FakeWorker.device(relay.url, 'other', s2);
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
    for (let i = 0; i < 50 && (await (await fetch(`${relay.url}/api/v1/runs/${pinned.id}`)).json() as { status: string }).status === 'running'; i++) await new Promise((r) => setTimeout(r, 50));
    expect(v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v1/runs/${pinned.id}`)).json())).toMatchObject({ status: 'failed', error: { code: 'relay/node-left' } });
    expect(phone.received.some((m) => m.type === 'assign')).toBe(false);

    // A pin to a node of another space (or one that is gone) is refused before anything starts.
    for (const where of [{ space: s1, node: other.id }, { space: s1, node: laptop.id }]) {
      const res = await startRun('nowhere', where);
      expect(res.status).toBe(409);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe('relay/unknown-node');
    }
    // "My devices" in a space nobody offers a node in: 503 with what to do.
    const empty = await startRun('nobody', { space: await spaceIdOf(createSpaceSecret()), cloud: false });
    expect(empty.status).toBe(503);
    expect(v.parse(ErrorBodySchema, await empty.json()).error.message).toMatch(/Offer this device as a node/);

    // My devices only: the space's node gets it, never the cloud or another space; it moves on within the space.
    const mine = v.parse(RunRecordSchema, await (await startRun('my devices', { space: s1, cloud: false })).json());
    expect((await phone.assigned()).run).toBe(mine.id);
    const laptop2 = await FakeWorker.device(relay.url, 'laptop-again', s1);
    phone.close();
    expect((await laptop2.assigned()).run).toBe(mine.id);
    expect(cloud.received.filter((m) => m.type === 'assign')).toHaveLength(1);
    expect(other.received.some((m) => m.type === 'assign')).toBe(false);
    laptop2.send({ type: 'finished', run: mine.id, status: 'idle' });
    for (const w of [cloud, other, laptop2]) w.close();
    await Promise.all([cloud.closed, other.closed, laptop2.closed, phone.closed]);
  });
});
