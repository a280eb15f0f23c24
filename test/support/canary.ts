/**
 * Looking for plaintext: every byte of every file under a folder (SQLite files and their WAL included), and every row
 * of a Postgres database's tables.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import WebSocket from 'ws';
import type { Engine } from '../../src/core/llm/engine.ts';
import { followRun, type StreamSocket } from '../../src/core/parallel/index.ts';
import { RelayHttp, fetchSnapshot, publishSession, startSealedRun } from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { setupFor, turn, type Fixtures } from './runtime-agent.ts';

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/** Each (needle, file) where the file's bytes contain the needle's UTF-8 bytes. */
export async function plaintextHits(dir: string, needles: readonly string[]): Promise<{ needle: string; file: string }[]> {
  const hits: { needle: string; file: string }[] = [];
  for (const file of await filesUnder(dir)) {
    const bytes = await readFile(file);
    for (const needle of needles) if (bytes.includes(Buffer.from(needle, 'utf8'))) hits.push({ needle, file: path.relative(dir, file) });
  }
  return hits;
}

/**
 * Each (needle, table) where a row of a table in `database` holds the needle, as text or as the bytes of a bytea
 * column (which a row's JSON shows in hex).
 */
export async function tableHits(database: string, needles: readonly string[]): Promise<{ needle: string; table: string }[]> {
  const client = new pg.Client({ connectionString: database });
  await client.connect();
  try {
    const tables = (await client.query<{ name: string }>("SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'")).rows.map((r) => r.name);
    const hits: { needle: string; table: string }[] = [];
    for (const table of tables) {
      const rows = (await client.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM "${table}" t`)).rows.map((r) => r.row);
      for (const needle of needles) {
        const hex = Buffer.from(needle, 'utf8').toString('hex');
        if (rows.some((row) => row.includes(needle) || row.includes(hex))) hits.push({ needle, table });
      }
    }
    return hits;
  } finally {
    await client.end();
  }
}

/**
 * A share, a run on the relay's worker, and a move back and out again, each carrying a canary of its own. Returns
 * what must not reach the relay: the canaries, and the replies (quoting what the model generated, long enough to be
 * canaries of their own) — read back by the device from the run's sealed events, so the relay carried them.
 */
export async function shareRunMove(relayUrl: string, tag: string, f: Fixtures, engine: Engine): Promise<string[]> {
  const http = new RelayHttp({ baseUrl: relayUrl });
  const device = createMemoryStore();
  const canaries = [`canary-shared-quokka-${tag}`, `canary-run-narwhal-${tag}`, `canary-moved-axolotl-${tag}`];
  const open = (url: string, protocols?: string[]) => new WebSocket(url, protocols) as unknown as StreamSocket;
  const repliesOf = async (run: string, key: Uint8Array): Promise<string[]> => {
    const replies: string[] = [];
    await followRun(http, run, (m) => m.event.type === 'reply' && replies.push(String(m.event.text)), { key, open });
    if (replies.length === 0) throw new Error(`run ${run} streamed no reply`);
    return replies;
  };

  // A share: a session with a turn, published.
  const runtime = await AgentRuntime.create(device, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
  const replies = (await turn(runtime, canaries[0]!, true)).replies;
  const sessionId = runtime.session.id;
  await runtime.dispose();
  const shared = await publishSession(device, sessionId, http);

  // A run on the relay's worker: a new message there, its reply streamed back.
  const run = await startSealedRun(http, { snapshot: shared.snapshot.id, writeToken: shared.writeToken, key: shared.key, input: { type: 'user', text: canaries[1]! } });
  replies.push(...(await repliesOf(run.id, shared.key)));

  // A move: the device takes it back, goes on with a message, publishes and resumes it on the worker.
  await fetchSnapshot(http, shared.snapshot.id, shared.key, device);
  const back = await AgentRuntime.open(device, setupFor(f, engine), sessionId);
  replies.push(...(await turn(back, canaries[2]!)).replies);
  await back.dispose();
  const moved = await publishSession(device, sessionId, http, { snapshotId: shared.snapshot.id, writeToken: shared.writeToken, key: shared.key });
  const resumed = await startSealedRun(http, { snapshot: moved.snapshot.id, writeToken: moved.writeToken, key: moved.key, input: { type: 'user', text: `${canaries[2]} again` } });
  replies.push(...(await repliesOf(resumed.id, moved.key)));

  return [...canaries, ...replies.filter((r) => r.length >= 16)];
}
