import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
  it('verifies a healthy store and reports damage', async () => {
    const dir = await tempDir();
    const store = await openFsStore(dir);
    const id = await store.put(new TextEncoder().encode('kept'));
    await store.setRef({ name: 'a/b', expect: null, next: id, reason: 'c' });
    expect(await store.verify()).toEqual({ objects: 1, refs: 1, unindexed: 0, problems: [] });
    await writeFile(path.join(dir, 'objects', id.slice(0, 2), id.slice(2)), 'tampered');
    expect((await store.verify()).problems).toEqual([`object ${id} does not match its id`]);
    const err = await store.get(id).catch((e: unknown) => e);
    expect(isFerryError(err, 'store/corrupt-object')).toBe(true);
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
    const backend = await FsBackend.open(dir, { recentBytes: 64 * 1024 });
    const object = (n: number, seed: number) => {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
      return { id: createHash('sha256').update(bytes).digest('hex'), bytes };
    };
    const first = [object(4000, 1), object(4000, 2)];
    await backend.commit(first, []);
    // Gone from disk, still answered: from memory (a real reader would get them without touching the disk).
    await rm(path.join(dir, 'packs'), { recursive: true });
    expect(await backend.getObjects(first.map((o) => o.id))).toEqual(first.map((o) => o.bytes));
    // Twenty more commits push the first out of the 64 KiB: then the disk answers, and finds them damaged.
    for (let i = 0; i < 20; i++) await backend.commit([object(4000, 10 + i)], []);
    await expect(backend.getObjects([first[0]!.id])).rejects.toSatisfy((e) => isFerryError(e, 'store/corrupt-object'));
    const latest = object(4000, 29);
    expect(await backend.getObjects([latest.id])).toEqual([latest.bytes]);
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads objects of one pack together or apart, each exactly', async () => {
    const dir = await tempDir();
    const store = await openFsStore(dir);
    const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
    // Small objects around a large one: those next to each other are read in one go, those far apart one by one.
    const objects = [bytes(100, 1), bytes(300, 2), bytes(1 << 20, 3), bytes(50, 4)];
    const ids = await store.putMany(objects);
    expect(await store.getMany([ids[1]!, ids[0]!])).toEqual([objects[1], objects[0]]);
    expect(await store.getMany([ids[3]!, ids[0]!, ids[1]!])).toEqual([objects[3], objects[0], objects[1]]);
    expect(await store.getMany(ids)).toEqual(objects);
    expect(await store.verify()).toEqual({ objects: 4, refs: 0, unindexed: 0, problems: [] });
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});
