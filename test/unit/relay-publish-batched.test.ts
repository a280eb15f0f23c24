/**
 * Publishing in one request, fetching in at most two (issue 6): a publish sends the missing objects and the manifest
 * and moves the snapshot in one atomic commit on the relay; a fetch gets the record, manifest, structure and the
 * first MiB of pages in one answer and any other pages in one more. The safety properties stay: a failed publish leaves nothing visible, tokens and
 * limits are checked, a publisher whose idea of the snapshot is stale re-reads it, and a relay data folder from
 * before (registry in its own database, loose object files) keeps every snapshot and token.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as v from 'valibot';
import { FsBackend, openFsStore } from '../../server/store/index.ts';
import { newWriteToken } from '../../server/relay/tokens.ts';
import {
  ErrorBodySchema,
  FRAMES_CONTENT_TYPE,
  RelayHttp,
  SnapshotContentsSchema,
  encodeFrames,
  encodeManifest,
  fetchSnapshot,
  makeManifest,
  publishSession,
  snapshotPaths,
  type PublishResult,
} from '../../src/core/protocol/index.ts';
import { PAGE_SIZE, Session, sessionPrefix } from '../../src/core/session/index.ts';
import { deriveSessionKeys, encodeContainer, sealObject, verifySessions } from '../../src/core/snapshot/index.ts';
import { createMemoryStore, objectId, type Store } from '../../src/core/store/index.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { patternImage, testLlm } from '../support/session-fixtures.ts';
import { appendSteps, makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

/** Every request a RelayHttp sends: method and path. */
function recorder(): { fetch: typeof fetch; sent: string[] } {
  const sent: string[] = [];
  return { sent, fetch: (input, init) => (sent.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`), fetch(input, init)) };
}

/** Fetches snapshot `p` into `into` (holding version `since`, if given) and says which requests that took. */
async function fetchCounted(relayUrl: string, p: PublishResult, into: Store, since?: number): Promise<{ version: number; sent: string[] }> {
  const r = recorder();
  const fetched = await fetchSnapshot(new RelayHttp({ baseUrl: relayUrl, fetch: r.fetch }), p.snapshot.id, p.key, into, since === undefined ? {} : { since });
  return { version: fetched.snapshot.version, sent: r.sent };
}

async function sameSession(a: ReturnType<typeof createMemoryStore>, b: ReturnType<typeof createMemoryStore>, id: string): Promise<void> {
  expect(await b.listRefs(sessionPrefix(id))).toEqual(await a.listRefs(sessionPrefix(id)));
  const [sa, sb] = [await Session.open(a, id), await Session.open(b, id)];
  const head = await sa.head();
  expect(await sb.component(head, 'vm')).toEqual(await sa.component(head, 'vm'));
}

describe('one request to publish, two to fetch', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, rateLimitPerMinute: 0 });
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  test('a new snapshot is one request; an update from a known base is one; a fetch of a deep session is two', async () => {
    const device = createMemoryStore();
    const { session, image } = await writeSession(device, 8);
    const r = recorder();
    const http = new RelayHttp({ baseUrl: relay.url, fetch: r.fetch });
    const first = await publishSession(device, session.id, http);
    expect(r.sent).toEqual([`POST ${snapshotPaths.publish}`]);

    await appendSteps(session, image, 100, 3);
    r.sent.length = 0;
    const second = await publishSession(device, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key, base: first.base });
    expect(r.sent).toEqual([`POST ${snapshotPaths.publishTo(first.snapshot.id)}`]);
    expect(second.snapshot.version).toBe(2);

    // Without a base it reads the snapshot first: one request more.
    await appendSteps(session, image, 200, 1);
    r.sent.length = 0;
    const third = await publishSession(device, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    expect(r.sent).toEqual([`GET ${snapshotPaths.contents(first.snapshot.id)}`, `POST ${snapshotPaths.publishTo(first.snapshot.id)}`]);
    expect(third.snapshot.version).toBe(3);

    // Twelve checkpoints deep, and still: the structure (and the first MiB of pages) with the record, then the rest.
    r.sent.length = 0;
    const other = createMemoryStore();
    const fetched = await fetchSnapshot(http, first.snapshot.id, first.key, other);
    expect(r.sent).toEqual([`GET ${snapshotPaths.contents(first.snapshot.id)}`, 'POST /api/v2/objects/fetch']);
    expect(fetched.snapshot.version).toBe(3);
    await sameSession(device, other, session.id);
    await expect(verifySessions(other)).resolves.toBeGreaterThan(0);

    // A fetcher that holds an earlier version gets only the structure published since, and still the whole session.
    await appendSteps(session, image, 300, 2);
    const fourth = await publishSession(device, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key, base: third.base });
    const since = await http.snapshotContents(first.snapshot.id, 3);
    const all = await http.snapshotContents(first.snapshot.id, 0);
    expect(since.objects.size).toBeGreaterThan(0);
    expect(since.objects.size).toBeLessThan(all.objects.size);
    await fetchSnapshot(http, first.snapshot.id, first.key, other, { since: 3 });
    await sameSession(device, other, session.id);
    expect(fourth.snapshot.version).toBe(4);
  });

  test('a session whose pages fit one answer is fetched in one request, and so is what a later publish added', async () => {
    const device = createMemoryStore();
    const session = await Session.create(device, { llm: testLlm, components: { vm: patternImage(3 * PAGE_SIZE, 9) } });
    const image = await appendSteps(session, patternImage(3 * PAGE_SIZE, 9), 0, 4);
    const http = new RelayHttp({ baseUrl: relay.url });
    const first = await publishSession(device, session.id, http);
    const other = createMemoryStore();
    const fetched = await fetchCounted(relay.url, first, other);
    expect(fetched.sent).toEqual([`GET ${snapshotPaths.contents(first.snapshot.id)}`]);
    await sameSession(device, other, session.id);
    await appendSteps(session, image, 50, 2);
    await publishSession(device, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key, base: first.base });
    expect((await fetchCounted(relay.url, first, other, fetched.version)).sent).toEqual([`GET ${snapshotPaths.contents(first.snapshot.id)}`]);
    await sameSession(device, other, session.id);
    await expect(verifySessions(other)).resolves.toBeGreaterThan(0);
  });

  test('a publisher whose base is stale re-reads the snapshot and publishes onto it', async () => {
    const device = createMemoryStore();
    const { session, image } = await writeSession(device, 2);
    const http = new RelayHttp({ baseUrl: relay.url });
    const first = await publishSession(device, session.id, http);
    // Someone else with the token moves it meanwhile (the same session from another copy).
    const elsewhere = createMemoryStore();
    await fetchSnapshot(http, first.snapshot.id, first.key, elsewhere);
    await appendSteps(await Session.open(elsewhere, session.id), image, 50, 1);
    const moved = await publishSession(elsewhere, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    expect(moved.snapshot.version).toBe(2);

    await appendSteps(session, image, 60, 1);
    const again = await publishSession(device, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key, base: first.base });
    expect(again.snapshot.version).toBe(3);
    const other = createMemoryStore();
    await fetchSnapshot(http, first.snapshot.id, first.key, other);
    await sameSession(device, other, session.id);
  });

  test('a failed publish leaves nothing visible: wrong token, stale expect, plaintext, lying counts', async () => {
    const device = createMemoryStore();
    const { session } = await writeSession(device, 1);
    const http = new RelayHttp({ baseUrl: relay.url });
    const p = await publishSession(device, session.id, http);
    const keys = await deriveSessionKeys(p.key);
    const fresh = await sealObject(keys, { id: await objectId(new Uint8Array([1, 2, 3])), bytes: new Uint8Array([1, 2, 3]) });
    const manifest = await sealObject(keys, await encodeManifest(makeManifest(session.id, p.base.refs, 1)));
    const post = (pathname: string, query: Record<string, string>, body: Uint8Array, auth?: string): Promise<Response> =>
      fetch(`${relay.url}${pathname}?${new URLSearchParams(query)}`, { method: 'POST', body: body as Uint8Array<ArrayBuffer>, headers: { 'content-type': FRAMES_CONTENT_TYPE, ...(auth ? { authorization: `Bearer ${auth}` } : {}) } });
    const code = async (res: Response): Promise<[number, string]> => [res.status, v.parse(ErrorBodySchema, await res.json()).error.code];
    const to = snapshotPaths.publishTo(p.snapshot.id);
    const batch = encodeFrames([fresh, manifest]);
    const query = { manifest: manifest.id, expect: p.snapshot.manifest, structure: '1' };

    expect(await code(await post(to, query, batch))).toEqual([401, 'relay/token-required']);
    expect(await code(await post(to, query, batch, newWriteToken()))).toEqual([403, 'relay/bad-token']);
    expect(await code(await post(to, { ...query, expect: manifest.id }, batch, p.writeToken))).toEqual([409, 'store/ref-conflict']);
    expect(await code(await post(to, { ...query, structure: '3' }, batch, p.writeToken))).toEqual([400, 'protocol/bad-request']);
    expect(await code(await post(to, { manifest: manifest.id }, batch, p.writeToken))).toEqual([400, 'protocol/bad-request']);
    const plain = { id: 'a'.repeat(64), bytes: await encodeContainer(new Uint8Array(8), { kind: 'object' }) };
    expect(await code(await post(to, query, encodeFrames([plain, fresh, manifest]), p.writeToken))).toEqual([400, 'relay/not-sealed']);
    expect(await code(await post(snapshotPaths.publish, { manifest: 'b'.repeat(64) }, encodeFrames([fresh]), undefined))).toEqual([409, 'relay/missing-object']);
    expect(await code(await post(snapshotPaths.publish, { ...query }, batch))).toEqual([400, 'protocol/bad-request']);
    const truncated = batch.subarray(0, batch.length - 2);
    expect(await code(await post(snapshotPaths.publish, { manifest: manifest.id }, truncated))).toEqual([400, 'protocol/bad-frames']);
    // None of it stored anything, nor moved the snapshot, nor left a file behind (the conflict's pack is removed).
    expect(await http.missing([fresh.id, manifest.id, plain.id])).toEqual([fresh.id, manifest.id, plain.id]);
    const objects = relay.app.relayStore.objects;
    if (!(objects instanceof FsBackend)) throw new Error('this relay is embedded: its objects are files');
    expect((await objects.verify()).unindexed).toBe(0);
    expect(await http.getSnapshot(p.snapshot.id)).toEqual(p.snapshot);
    // The right request goes through, all of it at once.
    const ok = await post(to, query, batch, p.writeToken);
    expect(ok.status).toBe(200);
    expect(await http.missing([fresh.id, manifest.id])).toEqual([]);
    expect((await http.getSnapshot(p.snapshot.id)).manifest).toBe(manifest.id);
  });

  test('contents: bad queries and unknown snapshots are refused; a reader at the current version gets no structure', async () => {
    const device = createMemoryStore();
    const { session } = await writeSession(device, 2);
    const http = new RelayHttp({ baseUrl: relay.url });
    const p = await publishSession(device, session.id, http);
    for (const [query, status] of [['?since=abc', 400], ['?since=-1', 400], ['?other=1', 400]] as const) {
      expect((await fetch(`${relay.url}${snapshotPaths.contents(p.snapshot.id)}${query}`)).status).toBe(status);
    }
    expect((await fetch(`${relay.url}${snapshotPaths.contents('c'.repeat(40))}`)).status).toBe(404);
    const current = v.parse(SnapshotContentsSchema, await (await fetch(`${relay.url}${snapshotPaths.contents(p.snapshot.id)}?since=1`)).json());
    expect(current.objects).toEqual([]);
    expect(current.snapshot).toEqual(p.snapshot);
  });

  test('creating snapshots in one request has the publishing budget', async () => {
    const d = await makeTempDirs();
    const limited = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir, rateLimitPerMinute: 20 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${limited.url}${snapshotPaths.publish}?manifest=${'d'.repeat(64)}`, { method: 'POST', body: encodeFrames([]) as Uint8Array<ArrayBuffer>, headers: { 'content-type': FRAMES_CONTENT_TYPE } });
        statuses.push(res.status);
      }
      expect(statuses).toEqual([409, 409, 429]);
    } finally {
      await limited.close();
      await d.cleanup();
    }
  });
});

describe('the relay store on disk', () => {
  test('a data folder from before (registry in snapshots.sqlite) keeps every snapshot, its token and its history', async () => {
    const d = await makeTempDirs();
    try {
      const device = createMemoryStore();
      const { session, image } = await writeSession(device, 2);
      const before = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir });
      const p = await publishSession(device, session.id, new RelayHttp({ baseUrl: before.url }));
      await before.close();
      // Put the registry back where an earlier relay kept it: a database of its own, beside the object store's.
      const dir = path.join(d.dataDir, 'relay');
      const meta = new Database(path.join(dir, 'meta.sqlite'));
      const rows = meta.prepare<[], { id: string; token_hash: Buffer; created_at: number }>('SELECT id, token_hash, created_at FROM snapshots').all();
      meta.exec('DROP TABLE snapshots; DROP TABLE snapshot_structure;');
      meta.close();
      const legacy = new Database(path.join(dir, 'snapshots.sqlite'));
      legacy.pragma('journal_mode = WAL');
      legacy.exec('CREATE TABLE snapshots (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID');
      for (const r of rows) legacy.prepare('INSERT INTO snapshots VALUES (?, ?, ?)').run(r.id, r.token_hash, r.created_at);
      legacy.close();
      expect(rows.map((r) => r.id)).toEqual([p.snapshot.id]);

      const relay = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir });
      try {
        const http = new RelayHttp({ baseUrl: relay.url });
        expect(await http.getSnapshot(p.snapshot.id)).toEqual(p.snapshot);
        expect(existsSync(path.join(dir, 'snapshots.sqlite'))).toBe(false);
        // No structure hints for what was published before: the fetch walks the graph itself.
        const other = createMemoryStore();
        await fetchSnapshot(http, p.snapshot.id, p.key, other);
        await sameSession(device, other, session.id);
        // Its token still writes; a wrong one still does not.
        await appendSteps(session, image, 10, 1);
        await expect(publishSession(device, session.id, http, { snapshotId: p.snapshot.id, writeToken: newWriteToken(), key: p.key })).rejects.toSatisfy((e) => isFerryError(e, 'relay/bad-token'));
        const updated = await publishSession(device, session.id, http, { snapshotId: p.snapshot.id, writeToken: p.writeToken, key: p.key });
        expect(updated.snapshot.version).toBe(2);
      } finally {
        await relay.close();
      }
    } finally {
      await d.cleanup();
    }
  });

  test('a registry from before page hints keeps its structure hints, and hints pages from the next publish on', async () => {
    const d = await makeTempDirs();
    try {
      const device = createMemoryStore();
      const session = await Session.create(device, { llm: testLlm, components: { vm: patternImage(2 * PAGE_SIZE, 4) } });
      const image = await appendSteps(session, patternImage(2 * PAGE_SIZE, 4), 0, 2);
      const before = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir });
      const p = await publishSession(device, session.id, new RelayHttp({ baseUrl: before.url }));
      await before.close();
      // The table as an earlier relay made it: structure hints only.
      const meta = new Database(path.join(d.dataDir, 'relay', 'meta.sqlite'));
      meta.exec(`CREATE TABLE old_structure (snapshot TEXT NOT NULL, manifest TEXT NOT NULL, ids BLOB NOT NULL, PRIMARY KEY (snapshot, manifest)) WITHOUT ROWID;
        INSERT INTO old_structure SELECT snapshot, manifest, ids FROM snapshot_structure; DROP TABLE snapshot_structure; ALTER TABLE old_structure RENAME TO snapshot_structure;`);
      meta.close();

      const relay = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir });
      try {
        const other = createMemoryStore();
        const fetched = await fetchCounted(relay.url, p, other);
        expect(fetched.sent).toEqual([`GET ${snapshotPaths.contents(p.snapshot.id)}`, 'POST /api/v2/objects/fetch']);
        await sameSession(device, other, session.id);
        await appendSteps(session, image, 20, 1);
        await publishSession(device, session.id, new RelayHttp({ baseUrl: relay.url }), { snapshotId: p.snapshot.id, writeToken: p.writeToken, key: p.key, base: p.base });
        expect((await fetchCounted(relay.url, p, other, fetched.version)).sent).toEqual([`GET ${snapshotPaths.contents(p.snapshot.id)}`]);
        await sameSession(device, other, session.id);
      } finally {
        await relay.close();
      }
    } finally {
      await d.cleanup();
    }
  });

  test('objects committed together share one pack file; damage to it is reported, never read as data', async () => {
    const d = await makeTempDirs();
    try {
      const store = await openFsStore(d.dataDir);
      // Together over the size a commit keeps in the index: a pack.
      const [first, second] = [new Uint8Array(200_000).fill(1), new Uint8Array(200_000).fill(2)];
      const ids = await store.putMany([first, second]);
      await store.setRef({ name: 'a/b', expect: null, next: ids[1]!, reason: 'test' });
      expect(await store.verify()).toEqual({ objects: 2, refs: 1, unindexed: 0, problems: [] });
      const packs = await readdir(path.join(d.dataDir, 'packs'));
      expect(packs).toHaveLength(1);
      const file = path.join(d.dataDir, 'packs', packs[0]!);
      const packed = await readFile(file);
      expect(packed.equals(Buffer.concat([first, second]))).toBe(true);
      packed[packed.length - 1] = 9;
      await writeFile(file, packed);
      expect((await store.verify()).problems).toEqual([`object ${ids[1]} does not match its id`]);
      await expect(store.get(ids[1]!)).rejects.toSatisfy((e) => isFerryError(e, 'store/corrupt-object'));
      expect(Buffer.from((await store.get(ids[0]!))!).equals(first)).toBe(true);
      await writeFile(file, first);
      await expect(store.get(ids[1]!)).rejects.toSatisfy((e) => isFerryError(e, 'store/corrupt-object'));
      await store.close();
    } finally {
      await d.cleanup();
    }
  });

  test('a version 1 store (every object a loose file) is upgraded in place and reads as before', async () => {
    const d = await makeTempDirs();
    try {
      await mkdir(d.dataDir, { recursive: true });
      const bytes = new TextEncoder().encode('from before');
      const id = await objectId(bytes);
      await mkdir(path.join(d.dataDir, 'objects', id.slice(0, 2)), { recursive: true });
      await writeFile(path.join(d.dataDir, 'objects', id.slice(0, 2), id.slice(2)), bytes);
      const db = new Database(path.join(d.dataDir, 'meta.sqlite'));
      db.exec(`
        CREATE TABLE objects (id TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE refs (name TEXT PRIMARY KEY, id TEXT NOT NULL REFERENCES objects(id)) WITHOUT ROWID;
        CREATE TABLE reflog (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "from" TEXT, "to" TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
        CREATE INDEX reflog_by_name ON reflog(name, seq);
        PRAGMA user_version = 1;
      `);
      db.prepare('INSERT INTO objects VALUES (?, ?)').run(id, bytes.length);
      db.prepare('INSERT INTO refs VALUES (?, ?)').run('a/b', id);
      db.close();
      const store = await openFsStore(d.dataDir);
      expect(await store.get(id)).toEqual(bytes);
      expect(await store.getRef('a/b')).toBe(id);
      const more = await store.putMany([new Uint8Array([1]), new Uint8Array([2])]);
      expect(await store.getMany(more)).toEqual([new Uint8Array([1]), new Uint8Array([2])]);
      expect((await store.verify()).problems).toEqual([]);
      await store.close();
    } finally {
      await d.cleanup();
    }
  });
});
