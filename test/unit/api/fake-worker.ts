/**
 * A worker spoken by hand over a real WebSocket, for the relay's dispatcher and worker-protocol tests (no model
 * needed): it has a real key pair, answers the relay's challenge with its hello (and, for a device node, a proof of
 * membership), records what the relay sends, and heartbeats only while `beating`. Also: a run request built as
 * startSealedRun builds it but answered raw (for status codes), and reading a run's log with its session key.
 */
import WebSocket from 'ws';
import * as v from 'valibot';
import {
  RelayToWorkerSchema,
  RunEventReader,
  RunMessageSchema,
  RunRecordSchema,
  WORKER_PROTOCOL_VERSION,
  WorkerListSchema,
  mayRunOn,
  createWorkerKeys,
  paths,
  runReadToken,
  runReadVerifier,
  sealKeyTo,
  sealRunEvent,
  sealRunInput,
  workerPaths,
  SPACE_HEADER,
  type PublishResult,
  type OpenRunMessage,
  type RelayToWorker,
  type RunEvent,
  type RunPlacement,
  type SpaceCredentials,
  type SpaceMembership,
  type WorkerKeys,
  type WorkerProfile,
  type WorkerToRelay,
} from '../../../src/core/protocol/index.ts';
import { deriveSessionKeys } from '../../../src/core/snapshot/index.ts';

export const TOKEN = 'p'.repeat(43);

export const profile = (name: string): WorkerProfile => ({ name, model: 'm', tokenizer: 't', engine: 'fake', device: 'none', contextSize: 4096, slots: 1, prefillTps: 1, decodeTps: 1 });

type Assign = Extract<RelayToWorker, { type: 'assign' }>;

/** How a device node answers the challenge: a real member's proof, or whatever a rogue makes up. */
export type Membership = SpaceCredentials | ((nonce: string, workerKey: string) => Promise<SpaceMembership | undefined>);

export class FakeWorker {
  readonly received: RelayToWorker[] = [];
  beating = true;
  closed: Promise<number>;
  private readonly ws: WebSocket;
  private timer: NodeJS.Timeout | undefined;
  private waiters: (() => void)[] = [];

  private constructor(url: string, readonly keys: WorkerKeys, hello: (nonce: string) => Promise<WorkerToRelay>, token: boolean, localAddress?: string) {
    this.ws = new WebSocket(`${url.replace('http', 'ws')}${workerPaths.connect}`, { ...(token ? { headers: { authorization: `Bearer ${TOKEN}` } } : {}), ...(localAddress ? { localAddress } : {}) });
    this.ws.on('message', (data) => {
      const m = v.parse(RelayToWorkerSchema, JSON.parse(String(data)));
      this.received.push(m);
      if (m.type === 'challenge') void hello(m.nonce).then((h) => this.send(h));
      if (m.type === 'welcome') this.timer = setInterval(() => this.beating && this.send({ type: 'heartbeat' }), m.heartbeatMs);
      for (const w of this.waiters.splice(0)) w();
    });
    // A refused upgrade (4xx before any socket) counts as a close.
    this.ws.on('unexpected-response', (_req, res) => {
      this.received.push({ type: 'refused', error: { code: 'http/refused', message: `HTTP ${res.statusCode}` } });
      for (const w of this.waiters.splice(0)) w();
      this.ws.terminate();
    });
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.ws.on('close', (code) => (clearInterval(this.timer), resolve(code))));
  }

  /** A cloud worker: the worker token on the upgrade. */
  static async attach(url: string, name: string, protocol = WORKER_PROTOCOL_VERSION): Promise<FakeWorker> {
    const keys = await createWorkerKeys();
    return FakeWorker.#join(new FakeWorker(url, keys, async () => ({ type: 'hello', protocol, profile: profile(name), publicKey: keys.publicKey }), true));
  }

  /** A device node: no worker token; its hello carries the membership `space` proves (none when absent). */
  static async device(url: string, name: string, space: Membership | undefined): Promise<FakeWorker> {
    const keys = await createWorkerKeys();
    const prove = (nonce: string): Promise<SpaceMembership | undefined> =>
      space === undefined ? Promise.resolve(undefined) : typeof space === 'function' ? space(nonce, keys.publicKey) : space.prove(nonce, keys.publicKey);
    return FakeWorker.#join(new FakeWorker(url, keys, async (nonce) => {
      const membership = await prove(nonce);
      return { type: 'hello', protocol: WORKER_PROTOCOL_VERSION, profile: profile(name), publicKey: keys.publicKey, ...(membership ? { space: membership } : {}) };
    }, false));
  }

  /**
   * A connection that never says hello (it holds a stranger's place until the relay drops it), from `localAddress`
   * when given (any 127.x.y.z reaches a relay on the loopback: another client address, as the relay sees it).
   */
  static silent(url: string, localAddress?: string): FakeWorker {
    return new FakeWorker(url, { publicKey: '', open: () => Promise.reject(new Error('silent')) }, () => new Promise(() => undefined), false, localAddress);
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

  get refused(): Extract<RelayToWorker, { type: 'refused' }> | undefined {
    return this.received.find((m): m is Extract<RelayToWorker, { type: 'refused' }> => m.type === 'refused');
  }

  async assigned(): Promise<Assign> {
    return this.next((m): m is Assign => m.type === 'assign');
  }

  /** Seals `event` with the session key the assignment carried (opened with this worker's key) and reports it. */
  async report(assign: Assign, event: RunEvent): Promise<void> {
    const keys = await deriveSessionKeys(await this.keys.open(assign.request.key, assign.request.snapshot));
    this.send({ type: 'event', run: assign.run, event: await sealRunEvent(keys, assign.run, event) });
  }

  send(m: WorkerToRelay): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
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

/** What a run request needs of a published snapshot (a wrong `key` makes a run that fails on the worker). */
export type RunTarget = Pick<PublishResult, 'writeToken' | 'key'> & { snapshot: { id: string } };

/**
 * A run request's body as startSealedRun builds it: the key sealed to every worker listed now that the placement
 * allows (or to `to` only), the input sealed with it, and its read verifier.
 */
export async function runBody(relay: string, target: RunTarget, input: { type: 'user'; text: string } | { type: 'start'; task: string } | { type: 'resume' }, where?: RunPlacement, to?: readonly FakeWorker[]): Promise<Record<string, unknown>> {
  const listed = v.parse(WorkerListSchema, await (await fetch(relay + workerPaths.list, { headers: where?.space ? { [SPACE_HEADER]: where.space } : {} })).json()).workers;
  const publicKeys = to ? to.map((w) => w.keys.publicKey) : listed.filter((w) => mayRunOn(where, w)).map((w) => w.publicKey);
  const snapshot = target.snapshot.id;
  const keys = Object.fromEntries(await Promise.all(publicKeys.map(async (k) => [k, await sealKeyTo(k, target.key, snapshot)] as const)));
  return {
    snapshot,
    writeToken: target.writeToken,
    keys,
    input: await sealRunInput(await deriveSessionKeys(target.key), snapshot, input),
    readVerifier: await runReadVerifier(await runReadToken(target.key)),
    ...(where ? { where } : {}),
  };
}

/** POSTs `body` (a run request) and answers raw, for its status. */
export const postRun = (relay: string, body: unknown): Promise<Response> =>
  fetch(relay + paths.runs, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** POST /runs as startSealedRun builds it, answered raw (for status codes). */
export async function runRequest(relay: string, target: RunTarget, input: { type: 'user'; text: string } | { type: 'resume' }, where?: RunPlacement, to?: readonly FakeWorker[]): Promise<Response> {
  return postRun(relay, await runBody(relay, target, input, where, to));
}

/** Every event of run `runId` logged so far (from `from`), opened with the session key `key` (the stream's capability comes from it). */
export async function followEvents(relay: string, runId: string, key: Uint8Array, from = 0): Promise<{ seq: number; event: RunEvent }[]> {
  const count = v.parse(RunRecordSchema, await (await fetch(relay + paths.run(runId))).json()).events - from;
  const reader = await RunEventReader.for(key, runId);
  const ws = new WebSocket(`${relay.replace('http', 'ws')}${paths.runEvents(runId)}?from=${from}`, reader.protocols);
  const raw: unknown[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (data) => {
      raw.push(JSON.parse(String(data)));
      if (raw.length >= count) resolve();
    });
    ws.on('close', () => resolve());
    ws.on('error', reject);
    if (count <= 0) ws.once('open', () => resolve());
  });
  ws.close();
  return Promise.all(raw.map((m) => reader.openMessage(v.parse(RunMessageSchema, m))));
}

/**
 * Every message of a run's event stream (its URL) from `from`, opened with the session key, until the relay closes it
 * at the end of the run; `onMessage` hears each as it comes. Resolves with them and the close code.
 */
export async function followToEnd(url: string, key: Uint8Array, from = 0, onMessage: (m: OpenRunMessage) => void = () => undefined): Promise<{ messages: OpenRunMessage[]; code: number }> {
  const reader = await RunEventReader.for(key, /\/runs\/([0-9a-f]{32})\//.exec(url)![1]!);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}?from=${from}`, reader.protocols);
    const messages: OpenRunMessage[] = [];
    let opened: Promise<void> = Promise.resolve();
    ws.on('message', (data) => {
      opened = opened.then(async () => {
        const m = await reader.openMessage(v.parse(RunMessageSchema, JSON.parse(String(data))));
        messages.push(m);
        onMessage(m);
      });
    });
    ws.on('close', (code) => void opened.then(() => resolve({ messages, code }), reject));
    ws.on('error', reject);
  });
}
