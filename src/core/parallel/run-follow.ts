/**
 * Following one relay run to its end over its event stream (a WebSocket, Web-standard or the `ws` package's): every
 * event once and in order, across reconnects — a dropped stream is picked up again from the next seq, since the
 * relay replays its run log — and then the run's final record. The stream is opened with the run's read capability
 * and every event is opened with the session key (protocol/runs.ts). Gives up with `parallel/stream-lost` when the
 * stream cannot be re-established, so the caller can treat the run's node as gone.
 */
import { FerryError } from '../errors.ts';
import { RunEventReader, RunMessageSchema, parseWire, type OpenRunMessage, type RelayHttp, type RunRecord } from '../protocol/index.ts';

/** The part of a WebSocket a follower uses (the browser's WebSocket and the `ws` package's both have it). */
export interface StreamSocket {
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number): void;
}

/** Opens a WebSocket to `url` offering `protocols` (a run's stream: its subprotocol and read capability). */
export type OpenSocket = (url: string, protocols?: string[]) => StreamSocket;

/** The platform's WebSocket, or a typed error saying what to pass instead. */
export function defaultOpenSocket(): OpenSocket {
  const Ws = (globalThis as { WebSocket?: new (url: string, protocols?: string[]) => StreamSocket }).WebSocket;
  if (!Ws) throw new FerryError('parallel/no-websocket', 'This runtime has no WebSocket to follow child runs with; pass `openSocket` (in Node before 22: the ws package).');
  return (url, protocols) => new Ws(url, protocols);
}

export interface FollowOptions {
  open: OpenSocket;
  /** The run's session key: it opens the stream (the read capability) and every event. */
  key: Uint8Array;
  signal?: AbortSignal;
  /** Reconnects in a row before giving up; default 3. */
  retries?: number;
  /** First reconnect delay, doubled each time; default 200 ms. */
  backoffMs?: number;
  /** The seq of the first event wanted (a follower that already has the ones before it); default 0. */
  from?: number;
}

const NORMAL = 1000;

/** Streams run `runId`'s events to `onMessage` until the run ends; resolves with its final record. */
export async function followRun(http: RelayHttp, runId: string, onMessage: (m: OpenRunMessage) => void, opts: FollowOptions): Promise<RunRecord> {
  const retries = opts.retries ?? 3;
  const reader = await RunEventReader.for(opts.key, runId);
  let next = opts.from ?? 0;
  let failures = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    const outcome = await connect(http.runEventsUrl(runId, next), reader, opts, (m) => {
      if (m.seq < next) return;
      next = m.seq + 1;
      failures = 0;
      onMessage(m);
    });
    if (outcome === 'ended') return http.getRun(runId);
    if (++failures > retries) {
      throw new FerryError('parallel/stream-lost', `Lost the event stream of run ${runId} ${failures} times in a row (${outcome}); its node or the relay is unreachable.`, { details: { run: runId, next } });
    }
    await sleep((opts.backoffMs ?? 200) * 2 ** (failures - 1), opts.signal);
  }
}

/**
 * One connection: 'ended' when the relay closed it normally (the run ended) and every event it sent is delivered,
 * else why it dropped. Events are opened one after another, so they are delivered in order.
 */
function connect(url: string, reader: RunEventReader, opts: FollowOptions, deliver: (m: OpenRunMessage) => void): Promise<'ended' | string> {
  return new Promise((resolve, reject) => {
    const ws = opts.open(url, reader.protocols);
    let opened: Promise<void> = Promise.resolve();
    let failed = false;
    const onAbort = () => {
      ws.close(NORMAL);
      reject(opts.signal!.reason);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (value: 'ended' | string) => {
      opts.signal?.removeEventListener('abort', onAbort);
      void opened.then(() => failed || resolve(value));
    };
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      opts.signal?.removeEventListener('abort', onAbort);
      ws.close(1002);
      reject(err);
    };
    ws.onmessage = (event) => {
      opened = opened.then(async () => {
        if (failed) return;
        try {
          deliver(await reader.openMessage(parseWire(RunMessageSchema, JSON.parse(String(event.data)), 'A run event', 'relay/bad-response')));
        } catch (err) {
          fail(err);
        }
      });
    };
    ws.onerror = () => undefined; // a close follows, with its code
    ws.onclose = (event) => settle(event.code === NORMAL ? 'ended' : `closed with code ${event.code}`);
  });
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
