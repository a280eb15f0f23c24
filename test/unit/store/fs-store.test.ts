import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBackend, openFsStore } from '../../../server/store/index.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { storeConformance } from '../../support/store-conformance.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'ferry-fs-store-'));
}

storeConformance('filesystem + SQLite', async () => {
  const dir = await tempDir();
  let store = await openFsStore(dir);
  return {
    store,
    reopen: async () => {
      await store.close();
      store = await openFsStore(dir);
      return store;
    },
    teardown: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('filesystem store', () => {
  it('verifies a healthy store and reports damage, to a file or to bytes kept in the index', async () => {
    const dir = await tempDir();
    const store = await openFsStore(dir);
    // A large object gets a file of its own; a small commit's bytes stay in the index.
    const [large, small] = [await store.put(new Uint8Array(300_000).fill(7)), await store.put(new TextEncoder().encode('kept'))];
    await store.setRef({ name: 'a/b', expect: null, next: small, reason: 'c' });
    expect(await store.verify()).toEqual({ objects: 2, refs: 1, unindexed: 0, problems: [] });
    await writeFile(path.join(dir, 'objects', large.slice(0, 2), large.slice(2)), 'tampered');
    store.backend.database.prepare('UPDATE objects SET data = ? WHERE id = ?').run(Buffer.from('kepT'), small);
    expect((await store.verify()).problems).toEqual([`object ${large} does not match its id`, `object ${small} does not match its id`].sort());
    for (const id of [large, small]) expect(isFerryError(await store.get(id).catch((e: unknown) => e), 'store/corrupt-object')).toBe(true);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('ignores leftover temp files and unindexed objects from a crash', async () => {
    const dir = await tempDir();
    let store = await openFsStore(dir);
    await store.close();
    await writeFile(path.join(dir, 'tmp', 'half-written'), 'x');
    // A pack is written in place under a fresh name: a crash can leave one cut short, which nothing indexes.
    await writeFile(path.join(dir, 'packs', 'cut-short.pack'), 'x');
    store = await openFsStore(dir);
    const report = await store.verify();
    expect(report.problems).toEqual([]);
    expect(report.unindexed).toBe(1);
    expect(await store.has('0'.repeat(64))).toBe(false);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('with recentBytes, answers reads of the latest commits from memory, within the bound', async () => {
    const dir = await tempDir();
    const backend = await FsBackend.open(dir, { recentBytes: 4 << 20 });
    const object = (n: number, seed: number) => {
      const bytes = new Uint8Array(n).fill(seed);
      return { id: createHash('sha256').update(bytes).digest('hex'), bytes };
    };
    // Over the size a commit keeps in the index: a pack on disk.
    const first = [object(200_000, 1), object(200_000, 2)];
    await backend.commit(first, []);
    // Gone from disk, still answered: from memory (a real reader would get them without touching the disk).
    await rm(path.join(dir, 'packs'), { recursive: true });
    const equal = (got: (Uint8Array | undefined)[], want: { bytes: Uint8Array }[]) => expect(got.map((b, i) => Buffer.from(b!).equals(want[i]!.bytes))).toEqual(want.map(() => true));
    equal(await backend.getObjects(first.map((o) => o.id)), first);
    // Twenty more commits push the first out of the 4 MiB: then the disk answers, and finds them damaged.
    for (let i = 0; i < 20; i++) await backend.commit([object(300_000, 10 + i)], []);
    await expect(backend.getObjects([first[0]!.id])).rejects.toSatisfy((e) => isFerryError(e, 'store/corrupt-object'));
    const latest = object(300_000, 29);
    equal(await backend.getObjects([latest.id]), [latest]);
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a version 2 store (objects in packs) is upgraded in place: its objects read as before, new small ones go in the index', async () => {
    const dir = await tempDir();
    const [a, b] = [new TextEncoder().encode('packed before'), new TextEncoder().encode('and this too')];
    const id = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    await mkdir(path.join(dir, 'packs'), { recursive: true });
    await writeFile(path.join(dir, 'packs', 'old.pack'), new Uint8Array([...a, ...b]));
    const db = new Database(path.join(dir, 'meta.sqlite'));
    db.exec(`
      CREATE TABLE objects (id TEXT PRIMARY KEY, size INTEGER NOT NULL, pack TEXT, offset INTEGER) WITHOUT ROWID;
      CREATE TABLE refs (name TEXT PRIMARY KEY, id TEXT NOT NULL REFERENCES objects(id)) WITHOUT ROWID;
      CREATE TABLE reflog (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "from" TEXT, "to" TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
      CREATE INDEX reflog_by_name ON reflog(name, seq);
      PRAGMA user_version = 2;
    `);
    db.prepare('INSERT INTO objects VALUES (?, ?, ?, ?)').run(id(a), a.length, 'old', 0);
    db.prepare('INSERT INTO objects VALUES (?, ?, ?, ?)').run(id(b), b.length, 'old', a.length);
    db.close();
    const store = await openFsStore(dir);
    expect(await store.getMany([id(b), id(a)])).toEqual([b, a]);
    const more = await store.putMany([new Uint8Array([1]), new Uint8Array([2])]);
    expect(await store.getMany(more)).toEqual([new Uint8Array([1]), new Uint8Array([2])]);
    expect(await readdir(path.join(dir, 'packs'))).toEqual(['old.pack']);
    expect(await store.verify()).toEqual({ objects: 4, refs: 0, unindexed: 0, problems: [] });
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads objects of one pack together or apart, each exactly', async () => {
    const dir = await tempDir();
    const store = await openFsStore(dir);
    const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
    // Small objects around a large one: those next to each other are read in one go, those far apart one by one.
    const objects = [bytes(100, 1), bytes(300, 2), new Uint8Array(1 << 20).fill(3), bytes(50, 4)];
    const ids = await store.putMany(objects);
    // Byte-wise equality without a deep compare of a MiB element by element.
    const same = (got: (Uint8Array | undefined)[], want: number[]) => expect(got.map((b, i) => Buffer.from(b!).equals(objects[want[i]!]!))).toEqual(want.map(() => true));
    same(await store.getMany([ids[1]!, ids[0]!]), [1, 0]);
    same(await store.getMany([ids[3]!, ids[0]!, ids[1]!]), [3, 0, 1]);
    same(await store.getMany(ids), [0, 1, 2, 3]);
    expect(await store.verify()).toEqual({ objects: 4, refs: 0, unindexed: 0, problems: [] });
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});
