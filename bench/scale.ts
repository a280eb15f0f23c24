/**
 * Relay replicas on shared backends (a real Postgres with fsync on, and s3rver), against the embedded relay in the
 * same run:
 * - publish_ms_shared vs publish_ms_embedded: publishing the same session (32 pages, 20 steps) to a relay on
 *   Postgres + S3-compatible storage, and to one on SQLite + files. Goal ≤ 2×.
 * - stream_sessions_3_replicas vs stream_sessions: 200 runs, each followed over its own WebSocket, the followers
 *   spread over 3 replicas while one replica appends the events (every event crosses replicas through Postgres),
 *   against the same on one embedded relay; a session counts when its follower got every event. Goal ≥ baseline.
 *   The p99 append → receipt latency of each is reported beside them.
 * - replica_failover_ms: 3 replica processes behind a load balancer, a worker process; kill -9 of the replica holding
 *   the worker's socket mid-generation, to the next event at a follower on another replica. Goal ≤ 3,000.
 * - claim_race_double_runs: 24 short runs started at once through the 3 replicas; runs that more than one replica
 *   (or worker) started. Goal 0.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import WebSocket from 'ws';
import { buildRelay } from '../server/app.ts';
import { defaultConfig, type RelayConfig } from '../server/config.ts';
import { openComponentLibrary } from '../server/relay/component-library.ts';
import {
  RelayHttp,
  RunEventReader,
  eventStreamProtocols,
  publishSession,
  runReadToken,
  runReadVerifier,
  sealRunEvent,
  startSealedRun,
  type OpenRunMessage,
  type PublishResult,
  type RunInput,
  type RunMessage,
} from '../src/core/protocol/index.ts';
import { deriveSessionKeys, generateSessionKey } from '../src/core/snapshot/index.ts';
import { AgentRuntime } from '../src/core/runtime/runtime.ts';
import { PAGE_SIZE, Session } from '../src/core/session/index.ts';
import { createMemoryStore } from '../src/core/store/index.ts';
import { startBalancer } from '../test/support/balancer.ts';
import { startPostgres, type PostgresServer } from '../test/support/postgres.ts';
import { startRelayProcess, startWorkerProcess, type RelayProcess } from '../test/support/relay-process.ts';
import { tinyEngine, tinyModelFile } from '../test/support/runtime-agent.ts';
import { startS3Server, type S3Server } from '../test/support/s3-server.ts';
import { chatStep, patternImage, testLlm } from '../test/support/session-fixtures.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const TOKEN = 'b'.repeat(43);
const componentsDir = path.resolve(import.meta.dirname, '..', 'components', 'dist');

async function inProcessRelay(root: string, name: string, extra: Partial<RelayConfig>): Promise<{ app: FastifyInstance; url: string }> {
  const staticDir = path.join(root, 'dist');
  await mkdir(staticDir, { recursive: true });
  await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>bench</title>');
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir, dataDir: path.join(root, name), workerToken: TOKEN, ...extra });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

/** The session every publish sends: a 2 MiB component image and 20 steps. */
async function benchSession(): Promise<{ store: ReturnType<typeof createMemoryStore>; id: string }> {
  const store = createMemoryStore();
  let image = patternImage(32 * PAGE_SIZE, 3);
  const session = await Session.create(store, { llm: testLlm, components: { vm: image } });
  for (let n = 0; n < 20; n++) {
    image = image.slice();
    image.set(patternImage(512, n + 100), (n * 104_729) % (image.length - 512));
    await session.append(chatStep(n, { vm: image }));
  }
  return { store, id: session.id };
}

async function publishFigures(root: string, db: PostgresServer, s3: S3Server, figures: Figures): Promise<void> {
  const embedded = await inProcessRelay(root, 'embedded', {});
  const shared = await inProcessRelay(root, 'shared', { shared: { database: await db.createDatabase(), objects: s3.location('publish') } });
  try {
    const { store, id } = await benchSession();
    // Alternate the two so the machine's noise falls on both alike; each publish is a fresh snapshot of every object.
    const times = { embedded: [] as number[], shared: [] as number[] };
    for (let i = 0; i < 5; i++) {
      for (const [name, relay] of [['embedded', embedded], ['shared', shared]] as const) {
        const http = new RelayHttp({ baseUrl: relay.url });
        const t0 = performance.now();
        await publishSession(store, id, http);
        if (i > 0) times[name].push(performance.now() - t0);
      }
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    figures.publish_ms_shared = compared(median(times.shared), 'ms', 'publish_ms_embedded', median(times.embedded));
  } finally {
    await Promise.all([embedded.app.close(), shared.app.close()]);
  }
}

const STREAMS = 200;
const ROUNDS = 40;
const ROUND_MS = 50;

/**
 * STREAMS runs created and appended to on `writer`, followed on `readers` (round-robin). Returns the sessions whose
 * follower got every event, and the p99 latency.
 */
async function streamPass(writer: FastifyInstance, readers: string[]): Promise<{ complete: number; p99: number }> {
  // Events are sealed, as workers send them: latency is matched by seq (each run's log numbers them from 0).
  const key = generateSessionKey();
  const event = await sealRunEvent(await deriveSessionKeys(key), '00'.repeat(16), { type: 'token', text: 'x', id: 1 });
  const token = await runReadToken(key);
  const verifier = await runReadVerifier(token);
  const runs = await Promise.all(Array.from({ length: STREAMS }, () => writer.relayStore.runs.create('00'.repeat(20), verifier)));
  const latencies: number[] = [];
  const sentAt: number[] = [];
  const counts = new Array<number>(STREAMS).fill(0);
  const clients = await Promise.all(
    runs.map(
      (r, i) =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${readers[i % readers.length]!.replace('http', 'ws')}/api/v2/runs/${r.id}/events`, eventStreamProtocols(token));
          ws.on('message', (data) => {
            const m = JSON.parse(String(data)) as RunMessage;
            latencies.push(performance.now() - sentAt[m.seq]!);
            counts[i]!++;
          });
          ws.once('open', () => resolve(ws));
          ws.once('error', reject);
        }),
    ),
  );
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    sentAt[round] = performance.now();
    for (const r of runs) writer.relayStore.runs.append(r.id, event);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, ROUND_MS - (performance.now() - started))));
  }
  // Every event has been written once every run is finished (finish follows the appends in order).
  await Promise.all(runs.map((r) => writer.relayStore.runs.finish(r.id, 'idle')));
  const deadline = Date.now() + 10_000;
  while (counts.some((c) => c < ROUNDS) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  clients.forEach((c) => c.close());
  const sorted = latencies.sort((a, b) => a - b);
  return { complete: counts.filter((c) => c === ROUNDS).length, p99: sorted[Math.floor(sorted.length * 0.99)] ?? NaN };
}

async function streamFigures(root: string, db: PostgresServer, s3: S3Server, figures: Figures): Promise<void> {
  const embedded = await inProcessRelay(root, 'stream-embedded', {});
  const shared = { database: await db.createDatabase(), objects: s3.location('streams') };
  const replicas = [];
  for (const name of ['s1', 's2', 's3']) replicas.push(await inProcessRelay(root, name, { shared }));
  try {
    const one = await streamPass(embedded.app, [embedded.url]);
    const three = await streamPass(replicas[0]!.app, replicas.map((r) => r.url));
    figures.stream_sessions_3_replicas = compared(three.complete, 'sessions', 'stream_sessions', one.complete);
    figures.stream_event_p99_ms_3_replicas = compared(three.p99, 'ms', 'stream_event_p99_ms', one.p99);
  } finally {
    await Promise.all([embedded.app.close(), ...replicas.map((r) => r.app.close())]);
  }
}

async function replicaFigures(root: string, db: PostgresServer, s3: S3Server, figures: Figures): Promise<void> {
  const model = await tinyModelFile();
  const staticDir = path.join(root, 'dist');
  const database = await db.createDatabase();
  const args = ['--database', database, '--objects', s3.location('replicas'), '--worker-token', TOKEN, '--static', staticDir, '--components', componentsDir];
  const replicas: (RelayProcess & { id: string })[] = [];
  for (const name of ['p1', 'p2', 'p3']) {
    const proc = await startRelayProcess([...args, '--data', path.join(root, name)], { command: 'relay' });
    replicas.push({ ...proc, id: ((await (await fetch(`${proc.url}/healthz`)).json()) as { replica: string }).replica });
  }
  const balancer = await startBalancer(replicas.map((r) => Number(new URL(r.url).port)));
  const workers = await Promise.all(['w1', 'w2'].map((name) => startWorkerProcess({ relayUrl: balancer.url, token: TOKEN, name, model, dataDir: path.join(root, name), componentsDir })));
  const engine = await tinyEngine(model);
  const library = await openComponentLibrary([componentsDir]);
  const agent = [...library.ids].find(([, d]) => path.basename(d) === 'assistant')![0];
  const session = async (maxTokens: number, via: string, cut: boolean): Promise<PublishResult> => {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, { engine, load: (id) => library.load(id), sampling: { maxTokens, temperature: 0, seed: 0 } }, { agent, tools: [] });
    if (cut) {
      const abort = new AbortController();
      for await (const e of runtime.run({ type: 'start', task: 'Say hello.' }, abort.signal)) if (e.type === 'token') abort.abort();
    }
    await runtime.dispose();
    return publishSession(store, runtime.session.id, new RelayHttp({ baseUrl: via }));
  };
  const keys = new Map<string, Uint8Array>();
  const start = async (via: string, p: PublishResult, input: RunInput): Promise<string> => {
    const run = await startSealedRun(new RelayHttp({ baseUrl: via }), { snapshot: p.snapshot.id, key: p.key, writeToken: p.writeToken, input });
    keys.set(run.id, p.key);
    return run.id;
  };
  const follow = async (via: string, run: string, on: (m: OpenRunMessage) => void = () => undefined): Promise<OpenRunMessage[]> => {
    const reader = await RunEventReader.for(keys.get(run)!, run);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${via.replace('http', 'ws')}/api/v2/runs/${run}/events`, reader.protocols);
      const seen: OpenRunMessage[] = [];
      // Opened one after another, so they arrive in order.
      let opened: Promise<void> = Promise.resolve();
      ws.on('message', (d) => {
        opened = opened.then(async () => {
          const m = await reader.openMessage(JSON.parse(String(d)) as RunMessage);
          seen.push(m);
          on(m);
        });
      });
      ws.on('close', () => void opened.then(() => resolve(seen), reject));
      ws.on('error', reject);
    });
  };
  try {
    // Claim races: every run started at once, a third through each replica.
    const runs = await Promise.all(Array.from({ length: 24 }, async (_, i) => {
      const via = replicas[i % 3]!.url;
      return start(via, await session(4, via, false), { type: 'start', task: 'Hi.' });
    }));
    const streams = await Promise.all(runs.map((run, i) => follow(replicas[(i + 1) % 3]!.url, run)));
    const doubled = streams.filter((s) => s.filter((m) => m.event.type === 'resumed').length > 1 || s.some((m) => m.event.type === 'reassigned')).length;
    figures.claim_race_double_runs = compared(doubled, 'runs', 'goal_runs', 0);

    // Failover: kill -9 of the replica holding the run's worker, at a token after an acknowledged checkpoint.
    const published = await session(600, replicas[0]!.url, true);
    const run = await start(replicas[0]!.url, published, { type: 'user', text: 'Tell me a long story about ferries.' });
    // The next event after the kill is the first the new holder writes: the loss it found (events already in
    // flight from the victim, written before the kill, arrive sooner and do not count).
    let killedAt = 0;
    let nextAt = 0;
    let published1 = false;
    // Which replica holds it: the one its claim names (a worker attached there runs it).
    const sql = new pg.Client({ connectionString: database });
    await sql.connect();
    let holder: string | undefined;
    while (!holder) {
      holder = (await sql.query<{ replica: string | null }>('SELECT replica FROM run_claims WHERE run = $1', [run])).rows[0]?.replica ?? undefined;
      if (!holder) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await sql.end();
    const victim = replicas.find((r) => r.id === holder)!;
    const watcher = replicas.find((r) => r !== victim)!;
    await follow(watcher.url, run, (m) => {
      if (killedAt === 0) {
        if (m.event.type === 'published') published1 = true;
        if (m.event.type === 'token' && published1) {
          victim.child.kill('SIGKILL');
          killedAt = performance.now();
        }
      } else if (nextAt === 0 && m.event.type === 'worker-lost') nextAt = performance.now();
    });
    figures.replica_failover_ms = compared(nextAt - killedAt, 'ms', 'goal_ms', 3000);
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await balancer.close();
    await Promise.all(replicas.map((r) => r.stop()));
    await engine.dispose();
  }
}

async function run(): Promise<Figures> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-scale-'));
  await mkdir(path.join(root, 'dist'), { recursive: true });
  await writeFile(path.join(root, 'dist', 'index.html'), '<!doctype html><title>bench</title>');
  // fsync on: a commit costs what it costs in production, as the embedded store's does.
  const [db, s3] = await Promise.all([startPostgres({ durable: true }), startS3Server()]);
  const figures: Figures = {};
  try {
    await publishFigures(root, db, s3, figures);
    await streamFigures(root, db, s3, figures);
    await replicaFigures(root, db, s3, figures);
  } finally {
    await Promise.all([db.destroy(), s3.destroy()]);
    await rm(root, { recursive: true, force: true });
  }
  return figures;
}

export const scaleSuite: Suite = {
  name: 'scale',
  description: 'relay replicas on Postgres + S3-compatible storage vs the embedded relay: publish_ms_shared vs embedded, stream_sessions_3_replicas vs one relay, replica_failover_ms after kill -9, claim_race_double_runs',
  run,
};
