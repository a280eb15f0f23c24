/**
 * The one Store conformance suite. Every implementation (memory, IndexedDB via fake-indexeddb and in Chromium,
 * filesystem) runs it through its own factory; none may skip a case.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError, type ErrorCode } from '../../src/core/errors.ts';
import { objectId, type Store } from '../../src/core/store/index.ts';
import { expectSameBytes } from './bytes.ts';

export interface StoreHarness {
  store: Store;
  /** Closes the store and opens the same storage again through a new Store object. */
  reopen: () => Promise<Store>;
  teardown(): Promise<void>;
}

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(isFerryError(err, code), `expected FerryError ${code}, got ${String(err)}`).toBe(true);
}

export function storeConformance(name: string, open: () => Promise<StoreHarness>): void {
  describe(`Store conformance: ${name}`, () => {
    let h: StoreHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.teardown();
    });

    it('keys objects by the SHA-256 hex of their bytes', async () => {
      const id = await h.store.put(bytes('abc'));
      expect(id).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
      expect(await h.store.get(id)).toEqual(bytes('abc'));
      expect(await h.store.put(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    });

    it('put is idempotent and batch forms agree with single forms', async () => {
      const all = new Uint8Array(256).map((_, i) => i);
      const ids = await h.store.putMany([bytes('one'), all, bytes('one')]);
      expect(ids[0]).toBe(ids[2]);
      expect(await h.store.put(bytes('one'))).toBe(ids[0]);
      const missing = 'f'.repeat(64);
      expect(await h.store.hasMany([ids[0]!, missing, ids[1]!])).toEqual([true, false, true]);
      expect(await h.store.has(missing)).toBe(false);
      const got = await h.store.getMany([ids[1]!, missing]);
      expect(got[0]).toEqual(all);
      expect(got[1]).toBeUndefined();
      expect(await h.store.get(missing)).toBeUndefined();
    });

    it('stored objects are immutable copies', async () => {
      const buf = bytes('mutable');
      const id = await h.store.put(buf);
      buf[0] = 0;
      const first = (await h.store.get(id))!;
      first[1] = 0;
      expect(await h.store.get(id)).toEqual(bytes('mutable'));
    });

    it('round-trips a 1 MiB object', async () => {
      const big = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
      const id = await h.store.put(big);
      expectSameBytes(await h.store.get(id), big);
    });

    it('refuses malformed ids and ref names with typed errors', async () => {
      await expectCode(h.store.get('not-an-id'), 'store/bad-id');
      await expectCode(h.store.getRef('../escape'), 'store/bad-ref-name');
      const id = await h.store.put(bytes('x'));
      await expectCode(h.store.setRef({ name: 'a//b', expect: null, next: id, reason: 't' }), 'store/bad-ref-name');
    });

    it('moves refs by compare-and-swap and keeps a reflog', async () => {
      const [a, b] = await h.store.putMany([bytes('a'), bytes('b')]);
      expect(await h.store.getRef('s/x/main')).toBeUndefined();
      await h.store.setRef({ name: 's/x/main', expect: null, next: a!, reason: 'create' });
      await expectCode(h.store.setRef({ name: 's/x/main', expect: null, next: b!, reason: 'stale' }), 'store/ref-conflict');
      await expectCode(h.store.setRef({ name: 's/x/main', expect: b!, next: a!, reason: 'stale' }), 'store/ref-conflict');
      expect(await h.store.getRef('s/x/main')).toBe(a);
      await h.store.setRef({ name: 's/x/main', expect: a!, next: b!, reason: 'advance' });
      await h.store.setRef({ name: 's/x/main', expect: b!, next: a!, reason: 'rollback' });
      const log = await h.store.reflog('s/x/main');
      expect(log.map((e) => [e.from, e.to, e.reason])).toEqual([
        [null, a, 'create'],
        [a, b, 'advance'],
        [b, a, 'rollback'],
      ]);
      expect(log.every((e) => typeof e.at === 'number' && e.at > 0)).toBe(true);
    });

    it('deletes refs and lists them by prefix in name order', async () => {
      const id = await h.store.put(bytes('t'));
      for (const name of ['s/2/b', 's/1/b', 's/1/a', 't/1']) await h.store.setRef({ name, expect: null, next: id, reason: 'c' });
      expect((await h.store.listRefs('s/1/')).map((r) => r.name)).toEqual(['s/1/a', 's/1/b']);
      expect((await h.store.listRefs()).map((r) => r.name)).toEqual(['s/1/a', 's/1/b', 's/2/b', 't/1']);
      await h.store.setRef({ name: 's/1/a', expect: id, next: null, reason: 'delete' });
      expect(await h.store.getRef('s/1/a')).toBeUndefined();
      expect((await h.store.reflog('s/1/a')).map((e) => e.to)).toEqual([id, null]);
    });

    it('never points a ref at a missing object', async () => {
      await expectCode(h.store.setRef({ name: 'r', expect: null, next: 'a'.repeat(64), reason: 't' }), 'store/missing-object');
      expect(await h.store.getRef('r')).toBeUndefined();
    });

    it('commits objects and several refs atomically', async () => {
      const o = [bytes('p1'), bytes('p2'), bytes('root')];
      const ids = await Promise.all(o.map((b) => h.store.put(b).then(() => b)));
      expect(ids.length).toBe(3);
      const objs = await Promise.all([bytes('n1'), bytes('n2')].map(async (b) => ({ id: await sha(b), bytes: b })));
      await h.store.commit(objs, [
        { name: 'r/one', expect: null, next: objs[0]!.id, reason: 'c' },
        { name: 'r/two', expect: null, next: objs[1]!.id, reason: 'c' },
      ]);
      expect(await h.store.getRef('r/two')).toBe(objs[1]!.id);
      const more = { id: await sha(bytes('n3')), bytes: bytes('n3') };
      await expectCode(
        h.store.commit([more], [
          { name: 'r/one', expect: objs[0]!.id, next: more.id, reason: 'ok' },
          { name: 'r/two', expect: null, next: more.id, reason: 'conflict' },
        ]),
        'store/ref-conflict',
      );
      expect(await h.store.getRef('r/one')).toBe(objs[0]!.id);
      expect(await h.store.getRef('r/two')).toBe(objs[1]!.id);
      expect((await h.store.reflog('r/one')).length).toBe(1);
    });

    it('refuses bytes hashed here under another id: the id remembered from hashing them is checked, not trusted', async () => {
      const hashedHere = bytes('hashed here');
      const own = await objectId(hashedHere);
      const other = await sha(bytes('another'));
      await expectCode(h.store.commit([{ id: other, bytes: hashedHere }], [{ name: 'r', expect: null, next: other, reason: 'c' }]), 'store/id-mismatch');
      expect(await h.store.getRef('r')).toBeUndefined();
      await h.store.commit([{ id: own, bytes: hashedHere }], [{ name: 'r', expect: null, next: own, reason: 'c' }]);
      expect(await h.store.get(own)).toEqual(hashedHere);
    });

    it('refuses an object whose id is not its hash, moving nothing', async () => {
      const good = { id: await sha(bytes('good')), bytes: bytes('good') };
      await expectCode(h.store.commit([good, { id: good.id.replace(/^./, good.id[0] === '0' ? '1' : '0'), bytes: bytes('evil') }], [
        { name: 'r', expect: null, next: good.id, reason: 'c' },
      ]), 'store/id-mismatch');
      expect(await h.store.getRef('r')).toBeUndefined();
      await expectCode(h.store.commit([], [
        { name: 'r', expect: null, next: good.id, reason: 'a' },
        { name: 'r', expect: null, next: good.id, reason: 'b' },
      ]), 'store/duplicate-ref');
    });

    it('lets exactly one of two racing compare-and-swaps win', async () => {
      const [a, b, c] = await h.store.putMany([bytes('a'), bytes('b'), bytes('c')]);
      await h.store.setRef({ name: 'race', expect: null, next: a!, reason: 'c' });
      const results = await Promise.allSettled([
        h.store.setRef({ name: 'race', expect: a!, next: b!, reason: 'x' }),
        h.store.setRef({ name: 'race', expect: a!, next: c!, reason: 'y' }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
      const rejected = results.find((r) => r.status === 'rejected');
      expect(isFerryError(rejected?.reason, 'store/ref-conflict')).toBe(true);
      expect([b, c]).toContain(await h.store.getRef('race'));
    });

    it('keeps objects, refs and the reflog across reopen', async () => {
      const id = await h.store.put(bytes('durable'));
      await h.store.setRef({ name: 'keep/me', expect: null, next: id, reason: 'c' });
      h.store = await h.reopen();
      expect(await h.store.get(id)).toEqual(bytes('durable'));
      expect(await h.store.getRef('keep/me')).toBe(id);
      expect((await h.store.reflog('keep/me')).map((e) => e.reason)).toEqual(['c']);
    });
  });
}

async function sha(b: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b as Uint8Array<ArrayBuffer>));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}
