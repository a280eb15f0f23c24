/**
 * The browser's Store: objects, refs and the reflog in one IndexedDB database, so a ref moves in the same
 * transaction as the objects it needs — after a crash, a reload or a full disk either all of a commit is there or
 * none of it. Upgrades by other tabs are let through (we close on `versionchange` and reopen on the next call).
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { FerryError } from '../core/errors.ts';
import { ContentStore, refConflict, type ObjectId, type Ref, type ReflogEntry, type StoreBackend, type StoredObject } from '../core/store/index.ts';

const DB_VERSION = 1;

interface FerryDb extends DBSchema {
  objects: { key: string; value: Uint8Array };
  refs: { key: string; value: { name: string; id: string } };
  reflog: { key: number; value: ReflogEntry; indexes: { byName: string } };
}

export interface IdbStoreOptions {
  /** Database name; one per profile normally, one per test in tests. */
  name?: string;
  /** Another tab holds an older connection open and our open waits for it: tell the user to close it. */
  onBlocked?: () => void;
  /** Another tab upgrades the database: we closed our connection so it can proceed. */
  onVersionChange?: () => void;
}

export class IdbBackend implements StoreBackend {
  private db: Promise<IDBPDatabase<FerryDb>> | undefined;

  constructor(private readonly opts: Required<Pick<IdbStoreOptions, 'name'>> & IdbStoreOptions) {}

  private connect(): Promise<IDBPDatabase<FerryDb>> {
    this.db ??= openDB<FerryDb>(this.opts.name, DB_VERSION, {
      upgrade(db) {
        db.createObjectStore('objects');
        db.createObjectStore('refs', { keyPath: 'name' });
        db.createObjectStore('reflog', { autoIncrement: true }).createIndex('byName', 'name');
      },
      blocked: () => this.opts.onBlocked?.(),
      blocking: () => {
        void this.db?.then((db) => db.close());
        this.db = undefined;
        this.opts.onVersionChange?.();
      },
      terminated: () => {
        this.db = undefined;
      },
    }).catch((cause: unknown) => {
      this.db = undefined;
      throw idbError(cause, 'open the database');
    });
    return this.db;
  }

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const tx = (await this.connect()).transaction('objects');
    return Promise.all(ids.map((id) => tx.store.get(id))).catch((cause: unknown) => {
      throw idbError(cause, 'read objects');
    });
  }

  async hasObjects(ids: readonly ObjectId[]): Promise<boolean[]> {
    const tx = (await this.connect()).transaction('objects');
    const keys = await Promise.all(ids.map((id) => tx.store.getKey(id))).catch((cause: unknown) => {
      throw idbError(cause, 'look up objects');
    });
    return keys.map((k) => k !== undefined);
  }

  async commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void> {
    const tx = (await this.connect()).transaction(['objects', 'refs', 'reflog'], 'readwrite');
    // Observe `done` now: if we abort below, its rejection must not surface as unhandled.
    const done = tx.done.catch((cause: unknown) => cause);
    const writes: Promise<unknown>[] = [];
    try {
      const refStore = tx.objectStore('refs');
      const current = await Promise.all(refs.map((r) => refStore.get(r.name)));
      refs.forEach((r, i) => {
        const actual = current[i]?.id ?? null;
        if (actual !== r.from) throw refConflict(r.name, r.from, actual);
      });
      // Issue every request before awaiting any, so the transaction never goes idle part-way.
      for (const o of objects) writes.push(tx.objectStore('objects').put(o.bytes, o.id));
      for (const r of refs) {
        writes.push(r.to === null ? refStore.delete(r.name) : refStore.put({ name: r.name, id: r.to }));
        writes.push(tx.objectStore('reflog').add(r));
      }
      await Promise.all(writes);
    } catch (cause) {
      // Requests already issued reject with AbortError once we abort; they are expected, not unhandled.
      for (const w of writes) w.catch(() => undefined);
      try {
        tx.abort();
      } catch {
        // Already aborted by the browser (e.g. quota): nothing was committed either way.
      }
      await done;
      throw cause instanceof FerryError ? cause : idbError(cause, 'write a commit');
    }
    const failure = await done;
    if (failure !== undefined) throw idbError(failure, 'write a commit');
  }

  async getRef(name: string): Promise<ObjectId | undefined> {
    return (await (await this.connect()).get('refs', name))?.id;
  }

  async listRefs(prefix: string): Promise<Ref[]> {
    const db = await this.connect();
    // Ref names are ASCII, so every name with this prefix sorts below prefix + U+FFFF.
    const rows = await db.getAll('refs', prefix === '' ? undefined : IDBKeyRange.bound(prefix, `${prefix}\uffff`));
    return rows.map((r) => ({ name: r.name, id: r.id }));
  }

  async reflog(name: string): Promise<ReflogEntry[]> {
    return (await this.connect()).getAllFromIndex('reflog', 'byName', name);
  }

  async close(): Promise<void> {
    const db = this.db;
    this.db = undefined;
    if (db) (await db.catch(() => undefined))?.close();
  }
}

export function openIdbStore(opts: IdbStoreOptions = {}): ContentStore {
  return new ContentStore(new IdbBackend({ ...opts, name: opts.name ?? 'ferry' }));
}

/** Maps IndexedDB failures to typed errors; a full disk is the one users must act on. */
export function idbError(cause: unknown, doing: string): FerryError {
  const name = (cause as { name?: string } | null)?.name;
  if (name === 'QuotaExceededError') {
    return new FerryError('store/quota-exceeded', `The browser refused to store more data while trying to ${doing}; nothing from this step was saved. Free space (delete old sessions or site data) and retry.`, { cause });
  }
  if (name === 'VersionError') {
    return new FerryError('store/version-changed', 'Another tab upgraded Ferry\'s database to a newer version; reload this page to continue.', { cause });
  }
  return new FerryError('store/idb-failed', `IndexedDB failed to ${doing}: ${cause instanceof Error ? cause.message : String(cause)}. Reload the page; if it persists, check the browser's site storage settings.`, { cause });
}
