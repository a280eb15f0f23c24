/**
 * Runs in Chromium (served by bench/session.ts): writes a session's worth of 64 KiB pages into the IndexedDB
 * store, 16 pages (1 MiB) per atomic commit, and reports MB/s.
 */
import { openIdbStore } from '../../src/browser/idb-store.ts';
import { objectId, type StoredObject } from '../../src/core/store/index.ts';

const PAGE = 64 * 1024;

async function pages(count: number, seed: number): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = new Uint8Array(PAGE);
    globalThis.crypto.getRandomValues(bytes.subarray(0, 65536));
    bytes[0] = seed;
    out.push({ id: await objectId(bytes), bytes });
  }
  return out;
}

async function run(totalMiB: number): Promise<number> {
  const name = `ferry-bench-${Date.now()}`;
  const store = openIdbStore({ name });
  const batches = await Promise.all(Array.from({ length: totalMiB }, (_, i) => pages(16, i)));
  await store.put(new Uint8Array([0])); // open the database outside the timed part
  const t0 = performance.now();
  for (const batch of batches) await store.commit(batch, []);
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  indexedDB.deleteDatabase(name);
  return (totalMiB * 16 * PAGE) / 1e6 / seconds;
}

(globalThis as unknown as { ferryIdbBench: typeof run }).ferryIdbBench = run;
document.title = 'ready';
