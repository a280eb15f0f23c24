/**
 * Relay benchmarks (issue 6), over loopback with an in-process relay on a temp data folder:
 * - migrate_first_bytes / migrate_repeat_bytes: every byte on the wire (HTTP headers included, counted on the
 *   relay's sockets) to publish a session, then to publish it again after 10 more steps. Goal: repeat ≤ the new
 *   objects + 2 KB (baseline = plaintext bytes of the new objects + 2048).
 * - relay_upload_MBps / relay_download_MBps: publishing / fetching a session with a large component image, end to
 *   end (sealing or opening, have/want, the relay's durable store), against a raw HTTP transfer of the same number
 *   of bytes on the same loopback in the same run.
 * - seal_MBps: the client's sealing alone, to show how much of the upload time is the device's, not the relay's.
 * - publish_step_ms_300: one more step of a 300-step session published as a runner does, against the same publish
 *   walking the whole session again (publishStepFigures).
 * - stream_sessions / relay_added_p99_ms: 200 runs each followed over its own WebSocket; events appended at a
 *   steady rate; p99 of append → client receipt, against the same messages sent by a bare `ws` server to 200
 *   clients in the same run (relay_added = relay p99 − bare p99).
 * - handoff_ms_256 / handoff_ms_2048: moving a session to the cloud worker while its reply streams, as the app does
 *   (the worker warmed first), from the cut to the worker's first token; handoff_cold_ms_<n> and its breakdown: the
 *   same move unwarmed — each against transfer + prefill of the same bytes and tokens; handoff_kv_ms_256 / _2048: a move between two workers
 *   with the KV shipped, against the same move re-prefilling — each on the tiny model and (suffix _m512) on the
 *   larger benchmark model of `npm run bench -- llm` (relay-handoff.ts).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildRelay } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { RelayHttp, eventStreamProtocols, fetchSnapshot, publishSession, runReadToken, runReadVerifier, sealRunEvent, type SealedRunEvent } from '../src/core/protocol/index.ts';
import { PAGE_SIZE, Session, sessionPrefix } from '../src/core/session/index.ts';
import { collectClosure, deriveSessionKeys, generateSessionKey, reachableIds, sealObject } from '../src/core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../src/core/store/index.ts';
import { chatStep, patternImage, testLlm } from '../test/support/session-fixtures.ts';
import WebSocket, { WebSocketServer } from 'ws';
import { compared, medianMs, type Figures, type Suite } from './lib.ts';
import { handoffFigures, handoffOnly } from './relay-handoff.ts';

/** Bytes read and written on every connection a server accepts, open or closed. */
function wireMeter(server: http.Server): () => number {
  let closed = 0;
  const open = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    open.add(s);
    s.on('close', () => {
      closed += s.bytesRead + s.bytesWritten;
      open.delete(s);
    });
  });
  return () => closed + [...open].reduce((n, s) => n + s.bytesRead + s.bytesWritten, 0);
}

async function startRelay(root: string): Promise<{ app: FastifyInstance; url: string; wire: () => number }> {
  const staticDir = path.join(root, 'dist');
  await mkdir(staticDir, { recursive: true });
  await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>bench</title>');
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir, dataDir: path.join(root, 'data') });
  const wire = wireMeter(app.server);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`, wire };
}

/** A bare HTTP server on loopback that reads request bodies and discards them, or answers with n bytes. */
async function rawServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
    req.on('data', () => undefined);
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
      res.end(Buffer.alloc(size));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const p99 = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]!;
};

const STREAMS = 200;
const ROUNDS = 40;
const ROUND_MS = 50;

/**
 * Opens `urls` as WebSocket clients (offering `protocols`) that record each message's latency from when client i's
 * message `seq` was sent (`sentAt(i, seq)`): events are sealed, so no time can ride inside them.
 */
async function streamClients(urls: string[], latencies: number[], sentAt: (client: number, seq: number) => number | undefined, protocols?: string[]): Promise<WebSocket[]> {
  return Promise.all(
    urls.map(
      (url, i) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url, protocols);
          ws.on('message', (data) => {
            const m = JSON.parse(String(data)) as { seq: number };
            latencies.push(performance.now() - (sentAt(i, m.seq) ?? NaN));
          });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
}

/** `send(i, message)` for every stream, ROUNDS times, ROUND_MS apart. */
async function produce(send: (i: number, t: number) => void): Promise<void> {
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < STREAMS; i++) send(i, performance.now());
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, ROUND_MS - (performance.now() - started))));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
}

/** A token event as a worker seals it (what the relay stores and streams), and the capability its streams are read with. */
async function sealedToken(): Promise<{ event: SealedRunEvent; token: string; verifier: string }> {
  const key = generateSessionKey();
  const event = await sealRunEvent(await deriveSessionKeys(key), '00'.repeat(16), { type: 'token', text: 'x', id: 1 });
  const token = await runReadToken(key);
  return { event, token, verifier: await runReadVerifier(token) };
}

/** One pass through the relay: STREAMS runs, each followed over its own WebSocket. Returns every latency. */
async function relayPass(relay: { app: FastifyInstance; url: string }): Promise<number[]> {
  const { event, token, verifier } = await sealedToken();
  const runs = await Promise.all(Array.from({ length: STREAMS }, () => relay.app.relayStore.runs.create('00'.repeat(20), verifier)));
  const lat: number[] = [];
  const sentAt = runs.map((): number[] => []);
  const clients = await streamClients(runs.map((r) => `${relay.url.replace('http', 'ws')}/api/v2/runs/${r.id}/events`), lat, (i, seq) => sentAt[i]![seq], eventStreamProtocols(token));
  // Each run's log numbers its events from 0 in the order they are appended.
  const next = runs.map(() => 0);
  await produce((i, t) => {
    sentAt[i]![next[i]!++] = t;
    relay.app.relayStore.runs.append(runs[i]!.id, event);
  });
  await Promise.all(runs.map((r) => relay.app.relayStore.runs.finish(r.id, 'idle')));
  clients.forEach((c) => c.close());
  return lat;
}

/** The same messages through a bare `ws` server to STREAMS clients: the floor the relay is compared with. */
async function barePass(): Promise<number[]> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const port = (wss.address() as { port: number }).port;
  const sockets: WebSocket[] = [];
  wss.on('connection', (s) => sockets.push(s));
  const lat: number[] = [];
  const { event } = await sealedToken();
  // One seq across every socket (which server socket serves which client does not matter then).
  const sentAt: number[] = [];
  const clients = await streamClients(Array.from({ length: STREAMS }, () => `ws://127.0.0.1:${port}`), lat, (_i, seq) => sentAt[seq]);
  while (sockets.length < STREAMS) await new Promise((resolve) => setTimeout(resolve, 10));
  await produce((i, t) => {
    sentAt.push(t);
    sockets[i]!.send(JSON.stringify({ seq: sentAt.length - 1, event }));
  });
  clients.forEach((c) => c.close());
  await new Promise((resolve) => wss.close(resolve));
  return lat;
}

async function streamFigures(relay: { app: FastifyInstance; url: string }, figures: Figures): Promise<void> {
  // Alternate relay and bare passes and keep the median p99 of each: the machine's noise hits both alike.
  const relayP99: number[] = [];
  const bareP99: number[] = [];
  let complete = true;
  for (let pass = 0; pass < 3; pass++) {
    const r = await relayPass(relay);
    complete &&= r.length === STREAMS * ROUNDS;
    relayP99.push(p99(r));
    bareP99.push(p99(await barePass()));
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[1]!;
  figures.stream_sessions = compared(complete ? STREAMS : 0, 'sessions', 'goal_sessions', STREAMS);
  figures.stream_event_p99_ms = compared(med(relayP99), 'ms', 'bare_ws_p99_ms', med(bareP99));
  figures.relay_added_p99_ms = compared(med(relayP99) - med(bareP99), 'ms', 'goal_ms', 5);
}


/** A session whose component image is `pages` pages, after `steps` steps that each touch one region. */
async function benchSession(store: Store, pages: number, steps: number, seed: number): Promise<{ session: Session; image: Uint8Array }> {
  let image = patternImage(pages * PAGE_SIZE, seed);
  const session = await Session.create(store, { llm: testLlm, components: { vm: image } });
  image = await moreSteps(session, image, 0, steps);
  return { session, image };
}

async function moreSteps(session: Session, image: Uint8Array, from: number, count: number): Promise<Uint8Array> {
  for (let n = from; n < from + count; n++) {
    image = image.slice();
    image.set(patternImage(512, n + 100), (n * 104_729) % (image.length - 512));
    await session.append(chatStep(n, { vm: image }));
  }
  return image;
}

/** Steps of the long session whose one-step publishes publish_step_ms_<n> times. */
const LONG_STEPS = 300;

/**
 * publish_step_ms_<n>: one more step of an n-step session published onto its snapshot as a runner publishes it —
 * onto what its last publish learnt the snapshot holds — against the same publish that walks the whole session
 * again to learn it (publish_step_walk_ms_<n>, what every publish did before). Interleaved, 7 of each.
 */
async function publishStepFigures(client: RelayHttp, figures: Figures): Promise<void> {
  const store = createMemoryStore();
  const { session, image: first } = await benchSession(store, 32, LONG_STEPS, 3);
  let image = first;
  let last = await publishSession(store, session.id, client);
  let step = LONG_STEPS;
  const publishStep = async (learnt: boolean): Promise<number> => {
    image = await moreSteps(session, image, step++, 1);
    const base = learnt ? last.base : { snapshot: last.base.snapshot, refs: last.base.refs };
    const t0 = performance.now();
    last = await publishSession(store, session.id, client, { snapshotId: last.snapshot.id, writeToken: last.writeToken, key: last.key, base });
    return performance.now() - t0;
  };
  await publishStep(true);
  const times = { learnt: [] as number[], walk: [] as number[] };
  for (let i = 0; i < 7; i++) {
    times.walk.push(await publishStep(false));
    times.learnt.push(await publishStep(true));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  figures[`publish_step_ms_${LONG_STEPS}`] = compared(median(times.learnt), 'ms', `publish_step_walk_ms_${LONG_STEPS}`, median(times.walk));
}

async function run(): Promise<Figures> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-relay-'));
  const relay = await startRelay(root);
  const raw = await rawServer();
  const figures: Figures = {};
  try {
    if (handoffOnly) {
      await handoffFigures(root, raw.url, figures);
      return figures;
    }
    const client = new RelayHttp({ baseUrl: relay.url });

    // Migration bytes: a 2 MiB state and 20 steps, published, then 10 more steps and published again.
    const store = createMemoryStore();
    const { session, image } = await benchSession(store, 32, 20, 1);
    const refs0 = await store.listRefs(sessionPrefix(session.id));
    const all = await collectClosure(store, refs0);
    let before = relay.wire();
    const first = await publishSession(store, session.id, client);
    const firstBytes = relay.wire() - before;
    const sessionBytes = all.reduce((n, o) => n + o.bytes.length, 0);
    figures.migrate_first_bytes = compared(firstBytes, 'bytes', 'session_closure_bytes', sessionBytes);

    await moreSteps(session, image, 20, 10);
    const fresh = await collectClosure(store, await store.listRefs(sessionPrefix(session.id)), await reachableIds(store, refs0));
    const freshBytes = fresh.reduce((n, o) => n + o.bytes.length, 0);
    before = relay.wire();
    const second = await publishSession(store, session.id, client, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    const repeatBytes = relay.wire() - before;
    figures.migrate_repeat_bytes = compared(repeatBytes, 'bytes', 'new_objects_bytes_plus_2KB', freshBytes + 2048);
    figures.migrate_repeat_objects = compared(second.sync.objects, 'objects', 'new_objects', fresh.length);
    // Everything beyond the new objects' own bytes: sealing, framing, negotiation, manifest, HTTP headers.
    figures.migrate_repeat_overhead_bytes = compared(repeatBytes - freshBytes, 'bytes', 'goal_2KB', 2048);

    await publishStepFigures(client, figures);

    // Throughput: a 16 MiB state (256 pages of incompressible data), published fresh each run, then fetched.
    const bigStore = createMemoryStore();
    const big = await benchSession(bigStore, 256, 2, 7);
    const bigBytes = (await collectClosure(bigStore, await bigStore.listRefs(sessionPrefix(big.session.id)))).reduce((n, o) => n + o.bytes.length, 0);
    const MB = bigBytes / 1e6;
    let published = first;
    const uploadMs = await medianMs(async () => {
      published = await publishSession(bigStore, big.session.id, client);
    }, 3, 0);
    const rawUpMs = await medianMs(async () => {
      const res = await fetch(`${raw.url}/up`, { method: 'POST', body: new Uint8Array(bigBytes), headers: { 'content-type': 'application/octet-stream' } });
      await res.arrayBuffer();
    }, 3, 0);
    figures.relay_upload_MBps = compared(MB / (uploadMs / 1000), 'MB/s', 'raw_loopback_upload_MBps', MB / (rawUpMs / 1000));
    // Where upload time goes: sealing alone (compress-if-worthwhile + AES-GCM, snapshot/container.ts), no network.
    const keys = await deriveSessionKeys(generateSessionKey());
    const objects = await collectClosure(bigStore, await bigStore.listRefs(sessionPrefix(big.session.id)));
    const sealMs = await medianMs(async () => {
      await Promise.all(objects.map((o) => sealObject(keys, o)));
    }, 3, 0);
    figures.seal_MBps = compared(MB / (sealMs / 1000), 'MB/s', 'relay_upload_MBps', MB / (uploadMs / 1000));
    const downloadMs = await medianMs(async () => {
      await fetchSnapshot(client, published.snapshot.id, published.key, createMemoryStore());
    }, 3, 0);
    const rawDownMs = await medianMs(async () => {
      await (await fetch(`${raw.url}/down?size=${bigBytes}`)).arrayBuffer();
    }, 3, 0);
    figures.relay_download_MBps = compared(MB / (downloadMs / 1000), 'MB/s', 'raw_loopback_download_MBps', MB / (rawDownMs / 1000));

    await streamFigures(relay, figures);
    await handoffFigures(root, raw.url, figures);
  } finally {
    await raw.close();
    await relay.app.close();
    await rm(root, { recursive: true, force: true });
  }
  return figures;
}

export const relaySuite: Suite = {
  name: 'relay',
  description: 'publish/fetch bytes and throughput through the relay over loopback (migrate_first/repeat_bytes, upload/download MB/s vs raw HTTP), handoff_ms_<n> (a live move to a cloud worker, warmed first) and handoff_cold_ms_<n> vs transfer + prefill, and handoff_kv_ms_<n> (KV shipped) vs the same move re-prefilling, on the tiny and the 512x8 model',
  run,
};
