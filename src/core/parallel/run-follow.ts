/**
 * Following one relay run to its end over its event stream (a WebSocket, Web-standard or the `ws` package's): every
 * event once and in order, across reconnects — a dropped stream is picked up again from the next seq, since the
 * relay replays its run log — and then the run's final record. Gives up with `parallel/stream-lost` when the
 * stream cannot be re-established, so the caller can treat the run's node as gone.
 */
import { FerryError } from '../errors.ts';
import { RunMessageSchema, parseWire, type RelayHttp, type RunMessage, type RunRecord } from '../protocol/index.ts';

/** The part of a WebSocket a follower uses (the browser's WebSocket and the `ws` package's both have it). */
export interface StreamSocket {
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number): void;
}

export type OpenSocket = (url: string) => StreamSocket;

/** The platform's WebSocket, or a typed error saying what to pass instead. */
export function defaultOpenSocket(): OpenSocket {
  const Ws = (globalThis as { WebSocket?: new (url: string) => StreamSocket }).WebSocket;
  if (!Ws) throw new FerryError('parallel/no-websocket', 'This runtime has no WebSocket to follow child runs with; pass `openSocket` (in Node before 22: the ws package).');
  return (url) => new Ws(url);
}

export interface FollowOptions {
  open: OpenSocket;
  signal?: AbortSignal;
  /** Reconnects in a row before giving up; default 3. */
  retries?: number;
  /** First reconnect delay, doubled each time; default 200 ms. */
  backoffMs?: number;
}

const NORMAL = 1000;

/** Streams run `runId`'s events to `onMessage` until the run ends; resolves with its final record. */
export async function followRun(http: RelayHttp, runId: string, onMessage: (m: RunMessage) => void, opts: FollowOptions): Promise<RunRecord> {
  const retries = opts.retries ?? 3;
  let next = 0;
  let failures = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    const outcome = await connect(http.runEventsUrl(runId, next), opts, (m) => {
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

/** One connection: 'ended' when the relay closed it normally (the run ended), else why it dropped. */
function connect(url: string, opts: FollowOptions, deliver: (m: RunMessage) => void): Promise<'ended' | string> {
  return new Promise((resolve, reject) => {
    const ws = opts.open(url);
    const onAbort = () => {
      ws.close(NORMAL);
      reject(opts.signal!.reason);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const settle = (value: 'ended' | string) => {
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    ws.onmessage = (event) => {
      let m: RunMessage;
      try {
        m = parseWire(RunMessageSchema, JSON.parse(String(event.data)), 'A run event', 'relay/bad-response');
      } catch (err) {
        opts.signal?.removeEventListener('abort', onAbort);
        ws.close(1002);
        reject(err);
        return;
      }
      deliver(m);
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
