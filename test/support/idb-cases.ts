/**
 * IndexedDB-specific behaviour, run against fake-indexeddb in node and real IndexedDB in Chromium: a full disk
 * surfaces as a typed error with nothing half-written, and another tab's upgrade is let through.
 */
import { expect, it } from 'vitest';
import { openIdbStore } from '../../src/browser/idb-store.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { objectId } from '../../src/core/store/index.ts';
import { storeConformance } from './store-conformance.ts';

let counter = 0;
const uniqueName = (): string => `ferry-test-${Date.now()}-${counter++}-${Math.random().toString(36).slice(2)}`;

export function idbStoreSuite(label: string): void {
  storeConformance(label, async () => {
    const name = uniqueName();
    let store = openIdbStore({ name });
    return {
      store,
      reopen: async () => {
        await store.close();
        store = openIdbStore({ name });
        return store;
      },
      teardown: async () => {
        await store.close();
        await new Promise<void>((resolve) => {
          const req = indexedDB.deleteDatabase(name);
          req.onsuccess = req.onerror = req.onblocked = () => resolve();
        });
      },
    };
  });

  it(`${label}: a quota error is typed and leaves nothing half-written`, async () => {
    const store = openIdbStore({ name: uniqueName() });
    const keep = await store.put(new TextEncoder().encode('before'));
    await store.setRef({ name: 'q/main', expect: null, next: keep, reason: 'c' });
    const objects = await Promise.all(['one', 'two', 'three'].map(async (s) => {
      const bytes = new TextEncoder().encode(s);
      return { id: await objectId(bytes), bytes };
    }));
    const realPut = IDBObjectStore.prototype.put;
    let calls = 0;
    IDBObjectStore.prototype.put = function (this: IDBObjectStore, ...args: Parameters<IDBObjectStore['put']>) {
      if (++calls === 2) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return realPut.apply(this, args);
    };
    let err: unknown;
    try {
      err = await store.commit(objects, [{ name: 'q/main', expect: keep, next: objects[2]!.id, reason: 'step' }]).catch((e: unknown) => e);
    } finally {
      IDBObjectStore.prototype.put = realPut;
    }
    expect(isFerryError(err, 'store/quota-exceeded'), String(err)).toBe(true);
    expect(await store.hasMany(objects.map((o) => o.id))).toEqual([false, false, false]);
    expect(await store.getRef('q/main')).toBe(keep);
    expect((await store.reflog('q/main')).length).toBe(1);
    await store.close();
  });

  it(`${label}: closes for another tab's upgrade, then reports the newer version`, async () => {
    const name = uniqueName();
    let notified = 0;
    const store = openIdbStore({ name, onVersionChange: () => notified++ });
    await store.put(new TextEncoder().encode('x'));
    await new Promise<void>((resolve, reject) => {
      const req = indexedDB.open(name, 2);
      req.onsuccess = () => {
        req.result.close();
        resolve();
      };
      req.onerror = () => reject(req.error ?? new Error('upgrade failed'));
    });
    expect(notified).toBe(1);
    const err = await store.get('0'.repeat(64)).catch((e: unknown) => e);
    expect(isFerryError(err, 'store/version-changed'), String(err)).toBe(true);
    await store.close();
  });
}
