/**
 * The worker protocol and the relay's dispatcher, spoken by hand over a real WebSocket (no model needed): a run
 * goes to an attached worker with everything it needs; only the worker a run is assigned to can write into its log;
 * a worker that goes silent is given up on after three missed heartbeats and its run moves to another, with the
 * original input when nothing was published; a stop reaches the worker; a worker of another protocol version is
 * refused; a run started with no worker at all is refused with 503 JSON.
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
  WorkerListSchema,
  publishSession,
  toBase64Url,
  workerPaths,
  type PublishResult,
  type RelayToWorker,
  type RunMessage,
  type WorkerProfile,
  type WorkerToRelay,
} from '../../src/core/protocol/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

const TOKEN = 'p'.repeat(43);
const HEARTBEAT_MS = 200;

const profile = (name: string): WorkerProfile => ({ name, model: 'm', tokenizer: 't', engine: 'fake', device: 'none', slots: 1, prefillTps: 1, decodeTps: 1 });

/** A worker spoken by hand: it records what the relay sends, and heartbeats only while `beating`. */
class FakeWorker {
  readonly received: RelayToWorker[] = [];
  beating = true;
  closed: Promise<number>;
  private readonly ws: WebSocket;
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  private constructor(url: string, hello: WorkerToRelay) {
    this.ws = new WebSocket(`${url.replace('http', 'ws')}${workerPaths.connect}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    this.ws.on('open', () => this.send(hello));
    this.ws.on('message', (data) => {
      const m = v.parse(RelayToWorkerSchema, JSON.parse(String(data)));
      this.received.push(m);
      if (m.type === 'welcome') this.timer = setInterval(() => this.beating && this.send({ type: 'heartbeat' }), m.heartbeatMs);
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => (clearInterval(this.timer), resolve(code))));
  }

  static async attach(url: string, name: string, protocol = 1): Promise<FakeWorker> {
    const w = new FakeWorker(url, { type: 'hello', protocol, profile: profile(name) });
    await w.next((m) => m.type === 'welcome' || m.type === 'refused');
    return w;
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

  const startRun = (text: string): Promise<Response> =>
    fetch(`${relay.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'user', text } }),
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
  const names = async (): Promise<string[]> => v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json()).workers.map((w) => w.profile.name).sort();

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
});
