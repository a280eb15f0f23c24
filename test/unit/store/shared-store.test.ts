/**
 * The shared backend (Postgres index, refs and reflog; bytes in S3-compatible storage) against a real Postgres and
 * a real S3-compatible server, one of each for the file; each case gets a fresh database and key prefix.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { SharedBackend } from '../../../server/store/shared-store.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { ContentStore } from '../../../src/core/store/index.ts';
import { startPostgres, type PostgresServer } from '../../support/postgres.ts';
import { startS3Server, type S3Server } from '../../support/s3-server.ts';
import { storeConformance } from '../../support/store-conformance.ts';

let servers: Promise<{ pg: PostgresServer; s3: S3Server }> | undefined;
const started = (): Promise<{ pg: PostgresServer; s3: S3Server }> => (servers ??= Promise.all([startPostgres(), startS3Server()]).then(([pg, s3]) => ({ pg, s3 })));

afterAll(async () => {
  const s = await servers;
  await Promise.all([s?.pg.destroy(), s?.s3.destroy()]);
});

/** A fresh database and prefix. */
async function location(): Promise<{ database: string; objects: string }> {
  const { pg, s3 } = await started();
  return { database: await pg.createDatabase(), objects: s3.location() };
}

storeConformance('Postgres + S3-compatible', async () => {
  const where = await location();
  let store = new ContentStore(await SharedBackend.open(where));
  return {
    store,
    reopen: async () => {
      await store.close();
      store = new ContentStore(await SharedBackend.open(where));
      return store;
    },
    teardown: () => store.close(),
  };
});

const enc = new TextEncoder();

describe('shared store', () => {
  it('reads objects of one commit back from its pack, in any order and with duplicates', async () => {
    const store = new ContentStore(await SharedBackend.open(await location()));
    const parts = Array.from({ length: 40 }, (_, i) => enc.encode(`part ${i} `.repeat(i + 1)));
    const ids = await store.putMany(parts);
    const order = [7, 39, 0, 7, 21];
    expect(await store.getMany(order.map((i) => ids[i]!))).toEqual(order.map((i) => parts[i]));
    await store.close();
  });

  it('a second replica sees a commit at once and loses a compare-and-swap race to it', async () => {
    const where = await location();
    const [a, b] = [new ContentStore(await SharedBackend.open(where)), new ContentStore(await SharedBackend.open(where))];
    const [x, y] = await a.putMany([enc.encode('x'), enc.encode('y')]);
    await a.setRef({ name: 'r/main', expect: null, next: x!, reason: 'create' });
    expect(await b.getRef('r/main')).toBe(x);
    expect(await b.get(y!)).toEqual(enc.encode('y'));
    await a.setRef({ name: 'r/main', expect: x!, next: y!, reason: 'advance' });
    const stale = await b.setRef({ name: 'r/main', expect: x!, next: x!, reason: 'stale' }).catch((e: unknown) => e);
    expect(isFerryError(stale, 'store/ref-conflict')).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('a commit that loses its compare-and-swap leaves none of its objects visible', async () => {
    const store = new ContentStore(await SharedBackend.open(await location()));
    const base = await store.put(enc.encode('base'));
    await store.setRef({ name: 'r', expect: null, next: base, reason: 'create' });
    const objects = await Promise.all(['n1', 'n2'].map(async (t) => ({ id: await sha(enc.encode(t)), bytes: enc.encode(t) })));
    const err = await store.commit(objects, [{ name: 'r', expect: null, next: objects[0]!.id, reason: 'stale' }]).catch((e: unknown) => e);
    expect(isFerryError(err, 'store/ref-conflict')).toBe(true);
    expect(await store.hasMany(objects.map((o) => o.id))).toEqual([false, false]);
    await store.close();
  });

  it('lists refs by a prefix holding a LIKE wildcard literally, in code-point order', async () => {
    const store = new ContentStore(await SharedBackend.open(await location()));
    const id = await store.put(enc.encode('t'));
    for (const name of ['a_b/1', 'axb/1', 'ab/1']) await store.setRef({ name, expect: null, next: id, reason: 'c' });
    expect((await store.listRefs('a_b/')).map((r) => r.name)).toEqual(['a_b/1']);
    expect((await store.listRefs('a')).map((r) => r.name)).toEqual(['a_b/1', 'ab/1', 'axb/1']);
    await store.close();
  });

  it('refuses a schema newer than it knows, and an unreachable database, with typed errors', async () => {
    const where = await location();
    const store = await SharedBackend.open(where);
    await store.db.query('UPDATE ferry_schema SET version = 999');
    await store.close();
    const newer = await SharedBackend.open(where).catch((e: unknown) => e);
    expect(isFerryError(newer, 'store/bad-version')).toBe(true);
    const nowhere = await SharedBackend.open({ ...where, database: 'postgres://ferry@127.0.0.1:1/ferry' }).catch((e: unknown) => e);
    expect(isFerryError(nowhere, 'store/open-failed'), String(nowhere)).toBe(true);
  });
});

async function sha(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}
