/**
 * Following a child's run (run-follow.ts) over a socket that drops: every event reaches the caller once and in
 * order — a reconnect asks the relay for the next seq, and a replayed event is not delivered again — the run's final
 * record comes back when the relay ends the stream; a stream that cannot be re-established is `parallel/stream-lost`
 * (its node is then treated as gone); a malformed event, or one not sealed for this run with its key, is refused;
 * abort closes the socket and rejects with its reason. The stream is opened with the run's read capability, and
 * every event is opened with the session key. The sockets are scripted here: what is under test is the follower's
 * own logic, not a relay.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { followRun, type StreamSocket } from '../../../src/core/parallel/index.ts';
import { RelayHttp, eventStreamProtocols, runReadToken, sealRunEvent, type OpenRunMessage, type RunRecord, type SealedRunEvent } from '../../../src/core/protocol/index.ts';
import { deriveSessionKeys, generateSessionKey } from '../../../src/core/snapshot/index.ts';
import { refusal } from '../../support/refusal.ts';

const RUN = 'a'.repeat(32);
const KEY = generateSessionKey();
/** Each seq's event as the run's worker sealed it; and one sealed for another run. */
const sealed: SealedRunEvent[] = [];
let elsewhere: SealedRunEvent;

beforeAll(async () => {
  const keys = await deriveSessionKeys(KEY);
  for (let seq = 0; seq < 8; seq++) sealed.push(await sealRunEvent(keys, RUN, { type: 'token', text: String(seq) }));
  elsewhere = await sealRunEvent(keys, 'c'.repeat(32), { type: 'token', text: 'moved here by the relay' });
});
const record: RunRecord = { id: RUN, snapshot: 'b'.repeat(40), status: 'done', events: 5, error: null, createdAt: 1, updatedAt: 2 };
const relay = new RelayHttp({ baseUrl: 'http://relay.test', fetch: async () => new Response(JSON.stringify(record)) });

/** A scripted socket per connection: `script(conn)` sends messages and closes it with a code. */
function sockets(script: (socket: ScriptedSocket, connection: number, from: number) => void): { open: (url: string, protocols?: string[]) => StreamSocket; urls: string[]; offered: (string[] | undefined)[] } {
  const urls: string[] = [];
  const offered: (string[] | undefined)[] = [];
  return {
    urls,
    offered,
    open(url, protocols) {
      urls.push(url);
      offered.push(protocols);
      const socket = new ScriptedSocket();
      const from = Number(new URL(url).searchParams.get('from'));
      setTimeout(() => script(socket, urls.length, from), 0);
      return socket;
    },
  };
}

class ScriptedSocket implements StreamSocket {
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closedWith: number | undefined;
  send(seq: number, event: Record<string, unknown> = sealed[seq]!): void {
    this.onmessage?.({ data: JSON.stringify({ seq, event }) });
  }
  raw(data: string): void {
    this.onmessage?.({ data });
  }
  drop(code: number): void {
    this.onerror?.(new Event('error'));
    this.onclose?.({ code });
  }
  close(code?: number): void {
    this.closedWith = code;
  }
}

describe('following a run', () => {
  test('across drops: every event once, in order, resumed from the next seq; the final record at the end', async () => {
    const { open, urls, offered } = sockets((s, n, from) => {
      // The relay replays from `from`; this one also repeats the event before it, which must not be delivered twice.
      if (n === 1) return (s.send(0), s.send(1), s.drop(1006));
      if (n === 2) return (s.send(from - 1), s.send(from), s.send(from + 1), s.drop(1011));
      for (let seq = from; seq < 5; seq++) s.send(seq);
      s.drop(1000);
    });
    const seen: OpenRunMessage[] = [];
    const end = await followRun(relay, RUN, (m) => seen.push(m), { open, key: KEY, backoffMs: 1 });
    expect(seen.map((m) => m.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(seen.map((m) => m.event)).toEqual([0, 1, 2, 3, 4].map((seq) => ({ type: 'token', text: String(seq) })));
    // Every connection offers the run's read capability.
    const token = await runReadToken(KEY);
    expect(offered).toEqual(urls.map(() => eventStreamProtocols(token)));
    expect(offered[0]![1]).toBe(`ferry-cap.${token}`);
    expect(urls.map((u) => new URL(u).searchParams.get('from'))).toEqual(['0', '2', '4']);
    expect(urls[0]).toBe(`ws://relay.test/api/v2/runs/${RUN}/events?from=0`);
    expect(end).toEqual(record);
  });

  test('a stream that keeps dropping without progress is given up on as parallel/stream-lost', async () => {
    const { open, urls } = sockets((s, n) => (n === 1 ? (s.send(0), s.drop(1006)) : s.drop(1006)));
    const err = await refusal(() => followRun(relay, RUN, () => undefined, { open, key: KEY, retries: 2, backoffMs: 1 }));
    expect(err).toMatchObject({ code: 'parallel/stream-lost', details: { run: RUN, next: 1 } });
    expect(urls).toHaveLength(3); // the first connection and two reconnects
  });

  test('progress resets the count: a stream that drops often but moves on is followed to its end', async () => {
    const { open } = sockets((s, _n, from) => (from < 6 ? (s.send(from), s.drop(1006)) : s.drop(1000)));
    const seen: number[] = [];
    await followRun(relay, RUN, (m) => seen.push(m.seq), { open, key: KEY, retries: 1, backoffMs: 1 });
    expect(seen).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test('a malformed event is refused and closes the socket', async () => {
    let socket: ScriptedSocket | undefined;
    const { open } = sockets((s) => ((socket = s), s.raw('{"seq": -1}')));
    expect(await refusal(() => followRun(relay, RUN, () => undefined, { open, key: KEY }))).toMatchObject({ code: 'relay/bad-response' });
    expect(socket!.closedWith).toBe(1002);
  });

  test('an event the relay made up, or moved here from another run, is refused', async () => {
    for (const event of [{ type: 'reply', text: 'made up by the relay' }, elsewhere]) {
      const { open } = sockets((s) => s.send(0, event));
      expect((await refusal(() => followRun(relay, RUN, () => undefined, { open, key: KEY }))).code).toMatch(/^(relay\/bad-response|snapshot\/auth-failed)$/);
    }
  });

  test('abort closes the socket and rejects with the reason', async () => {
    let socket: ScriptedSocket | undefined;
    const controller = new AbortController();
    const { open } = sockets((s) => ((socket = s), s.send(0)));
    const following = followRun(relay, RUN, () => controller.abort(new Error('job cancelled')), { open, key: KEY, signal: controller.signal });
    await expect(following).rejects.toThrow('job cancelled');
    expect(socket!.closedWith).toBe(1000);
  });
});
