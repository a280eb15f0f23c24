/**
 * Three relay replicas (`ferry relay --database … --objects …`, each its own process) on one real Postgres and one
 * real S3-compatible server, behind a load balancer, with two `ferry worker` processes attached through it:
 * - a session published through one replica, run through another and followed through the third streams exactly
 *   the tokens a run on one engine gives;
 * - runs started at once through different replicas are each claimed exactly once;
 * - `kill -9` of the replica holding the worker's socket mid-run: the run moves on from its last checkpoint, no
 *   acknowledged checkpoint is lost, and the follower's stream has no gap and no duplicate.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import WebSocket from 'ws';
import pg from 'pg';
import * as v from 'valibot';
import { RelayHttp, RunEventReader, RunMessageSchema, RunRecordSchema, fetchSnapshot, publishSession, startSealedRun, type OpenRunMessage, type PublishResult } from '../../src/core/protocol/index.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../src/core/store/index.ts';
import { openComponentLibrary, type ComponentLibrary } from '../../server/relay/component-library.ts';
import { startBalancer, type Balancer } from '../support/balancer.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { startRelayProcess, startWorkerProcess, type RelayProcess, type WorkerProcess } from '../support/relay-process.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { makeTempDirs } from './api/relay-harness.ts';

const componentsDir = path.join(path.resolve(import.meta.dirname, '..', '..'), 'components', 'dist');
const TOKEN = 'k'.repeat(43);

interface Replica extends RelayProcess {
  id: string;
  port: number;
}

describe('relay replicas on Postgres and S3-compatible storage', () => {
  let db: PostgresServer;
  let s3: S3Server;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let balancer: Balancer;
  let engine: Engine;
  let library: ComponentLibrary;
  let sql: pg.Client;
  const replicas: Replica[] = [];
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    [db, s3, dirs] = await Promise.all([startPostgres(), startS3Server(), makeTempDirs()]);
    const model = await tinyModelFile();
    const shared = ['--database', db.url(), '--objects', s3.location('replicas'), '--worker-token', TOKEN, '--static', dirs.staticDir, '--components', componentsDir];
    // One after another: the first applies the schema, the others find it there (concurrent starts are safe too).
    for (const name of ['r1', 'r2', 'r3']) {
      const proc = await startRelayProcess([...shared, '--data', path.join(dirs.root, name)], { command: 'relay' });
      const health = (await (await fetch(`${proc.url}/healthz`)).json()) as { replica: string };
      replicas.push({ ...proc, id: health.replica, port: Number(new URL(proc.url).port) });
    }
    balancer = await startBalancer(replicas.map((r) => r.port));
    [engine, library] = await Promise.all([tinyEngine(model), openComponentLibrary([componentsDir])]);
    workers.push(...(await Promise.all(['alpha', 'beta'].map((name) => startWorkerProcess({ relayUrl: balancer.url, token: TOKEN, name, model, dataDir: path.join(dirs.root, name), componentsDir })))));
    sql = new pg.Client({ connectionString: db.url() });
    await sql.connect();
  }, 180_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.stop()));
    // The load balancer goes first, with every connection it still passes on; then the replicas.
    await balancer?.close();
    await Promise.all(replicas.map((r) => r.stop()));
    await sql?.end();
    await engine?.dispose();
    await Promise.all([db?.destroy(), s3?.destroy(), dirs?.cleanup()]);
  });

  const idOf = (name: string): string => [...library.ids].find(([, d]) => path.basename(d) === name)![0];
  const setup = (maxTokens: number) => ({ engine, load: (id: string) => library.load(id), sampling: { maxTokens, temperature: 0, seed: 0 } });

  /**
   * A fresh device session of the assistant agent, published through `via`. `cut`: its first generation is cut at
   * the first token, so a run's first step (finishing it) is quick and checkpointed before a long second one.
   */
  async function deviceSession(maxTokens: number, via: string, cut = false): Promise<{ store: Store; sessionId: string; published: PublishResult }> {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setup(maxTokens), { agent: idOf('assistant'), tools: [] });
    const sessionId = runtime.session.id;
    if (cut) {
      const abort = new AbortController();
      for await (const event of runtime.run({ type: 'start', task: 'Say hello.' }, abort.signal)) if (event.type === 'token') abort.abort();
    }
    await runtime.dispose();
    return { store, sessionId, published: await publishSession(store, sessionId, new RelayHttp({ baseUrl: via })) };
  }

  /** Each run's session key, as its starter holds it (the stream and its events open with it). */
  const keys = new Map<string, Uint8Array>();

  async function startRun(via: string, published: PublishResult, input: { type: 'start'; task: string } | { type: 'user'; text: string }): Promise<string> {
    const run = await startSealedRun(new RelayHttp({ baseUrl: via }), { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input });
    keys.set(run.id, published.key);
    return run.id;
  }

  /** Every message of run `runId`'s stream through `via`, from seq 0 until it ends, opened; `onMessage` sees each as it comes. */
  async function follow(via: string, runId: string, onMessage: (m: OpenRunMessage, seen: OpenRunMessage[]) => void = () => undefined): Promise<OpenRunMessage[]> {
    const reader = await RunEventReader.for(keys.get(runId)!, runId);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${via.replace('http', 'ws')}/api/v2/runs/${runId}/events`, reader.protocols);
      const seen: OpenRunMessage[] = [];
      // Opened one after another, so each is seen in order.
      let opened: Promise<void> = Promise.resolve();
      ws.on('message', (data) => {
        opened = opened.then(async () => {
          const m = await reader.openMessage(v.parse(RunMessageSchema, JSON.parse(String(data))));
          seen.push(m);
          onMessage(m, seen);
        });
      });
      ws.on('close', () => void opened.then(() => resolve(seen), reject));
      ws.on('error', reject);
    });
  }

  test('published through one replica, run through another, followed through the third: the tokens of a run on one engine', async () => {
    const [r1, r2, r3] = replicas;
    const { store, sessionId, published } = await deviceSession(48, r1!.url);
    // The reference: the same session, run here on the same model, greedy.
    const reference = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: r3!.url }), published.snapshot.id, published.key, reference);
    const local = await AgentRuntime.open(reference, setup(48), sessionId);
    const expected: string[] = [];
    for await (const event of local.run({ type: 'start', task: 'Say hello to the ferry.' })) if (event.type === 'token') expected.push(event.text);
    await local.dispose();

    const runId = await startRun(r2!.url, published, { type: 'start', task: 'Say hello to the ferry.' });
    const messages = await follow(r3!.url, runId);
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    expect(messages.filter((m) => m.event.type === 'token').map((m) => m.event.text)).toEqual(expected);
    expect(messages.map((m) => m.event.type)).not.toContain('error');
    const record = v.parse(RunRecordSchema, await (await fetch(`${r1!.url}/api/v2/runs/${runId}`)).json());
    expect(record).toMatchObject({ status: 'idle', events: messages.length });
    await fetchSnapshot(new RelayHttp({ baseUrl: balancer.url }), published.snapshot.id, published.key, store);
    expect((await (await Session.open(store, sessionId)).history()).length).toBeGreaterThan(1);
  }, 120_000);

  test('runs started at once through different replicas are each claimed exactly once', async () => {
    const runs = await Promise.all(replicas.flatMap((r) => [0, 1].map(async () => {
      const { published } = await deviceSession(8, r.url);
      return startRun(r.url, published, { type: 'start', task: 'Hi.' });
    })));
    const streams = await Promise.all(runs.map((id, i) => follow(replicas[i % 3]!.url, id)));
    for (const messages of streams) {
      const types = messages.map((m) => m.event.type);
      expect(types.filter((t) => t === 'resumed')).toHaveLength(1);
      expect(types).not.toContain('reassigned');
      expect(types).not.toContain('error');
    }
    const claims = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM run_claims WHERE run = ANY($1)', [runs]);
    expect(claims.rows[0]!.n).toBe(0);
  }, 120_000);

  test('kill -9 of the replica holding the worker\'s socket mid-run: the run continues from its last checkpoint, the follower misses nothing', async () => {
    const { store, sessionId, published } = await deviceSession(600, replicas[0]!.url, true);
    const runId = await startRun(replicas[0]!.url, published, { type: 'user', text: 'Tell me a long story about ferries.' });
    let holder: string | undefined;
    await vi.waitFor(async () => {
      holder = (await sql.query<{ replica: string | null }>('SELECT replica FROM run_claims WHERE run = $1', [runId])).rows[0]?.replica ?? undefined;
      expect(holder).toBeDefined();
    }, { timeout: 30_000, interval: 50 });
    const victim = replicas.find((r) => r.id === holder)!;
    const watcher = replicas.find((r) => r !== victim)!;

    // Follow through a surviving replica; kill the victim at the first token after an acknowledged checkpoint.
    const acknowledged: string[] = [];
    let killedAt: number | undefined;
    let lastCheckpoint: string | undefined;
    const messages = await follow(watcher.url, runId, (m) => {
      if (killedAt !== undefined) return;
      if (m.event.type === 'checkpoint') lastCheckpoint = m.event.id as string;
      if (m.event.type === 'published' && lastCheckpoint) acknowledged.push(lastCheckpoint);
      if (m.event.type === 'token' && acknowledged.length > 0) {
        killedAt = m.seq;
        victim.child.kill('SIGKILL');
      }
    });
    expect(killedAt).toBeDefined();
    await victim.exited;
    expect(victim.child.signalCode).toBe('SIGKILL');

    // One stream, no gap, no duplicate: the loss, the move, the resume from the snapshot, the rest of the run.
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    const types = messages.map((m) => m.event.type);
    const lost = types.indexOf('worker-lost');
    expect(lost).toBeGreaterThan(killedAt!);
    expect(messages[lost + 1]?.event).toMatchObject({ type: 'reassigned', attempt: 2 });
    expect(messages[lost + 2]?.event).toMatchObject({ type: 'resumed', session: sessionId });
    expect(types.slice(lost)).toContain('checkpoint');
    expect(types).not.toContain('error');
    const final = v.parse(RunRecordSchema, await (await fetch(`${watcher.url}/api/v2/runs/${runId}`)).json());
    expect(final).toMatchObject({ status: 'idle', error: null, events: messages.length });

    // Every checkpoint acknowledged before the kill is in the session the replicas now hold.
    await fetchSnapshot(new RelayHttp({ baseUrl: balancer.url }), published.snapshot.id, published.key, store);
    const history = (await (await Session.open(store, sessionId)).history()).map((h) => h.id);
    for (const id of acknowledged) expect(history).toContain(id);
    expect(history[0]).toBe(messages.filter((m) => m.event.type === 'checkpoint').at(-1)!.event.id);
  }, 150_000);
});
