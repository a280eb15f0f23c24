/**
 * The server's Store: object bytes as files, refs/reflog/object index in SQLite.
 *
 * Durability order for one commit: every new object is written to tmp/, fsynced, renamed into objects/ab/<id>,
 * and the touched directories fsynced; only then does one SQLite transaction (compare-and-swap the refs, append
 * the reflog, index the objects) commit. `has` and `get` answer from that index, never from the directory. A crash before that transaction leaves complete but unindexed files
 * (ignored, rewritten on the next put, reported by verify); a crash after it leaves everything. Either way no ref
 * points at a missing object. SQLite runs in WAL mode with synchronous=FULL: NORMAL would also stay consistent
 * (WAL commits are atomic), but could forget the last acknowledged commits on power loss, and "nothing
 * acknowledged is lost" is the product's promise; the extra fsync per commit is small next to the object fsyncs.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { ContentStore, refConflict, type ObjectId, type Ref, type ReflogEntry, type StoreBackend, type StoredObject } from '../../src/core/store/index.ts';

const SCHEMA_VERSION = 1;
const WRITE_CONCURRENCY = 8;

export interface VerifyReport {
  objects: number;
  refs: number;
  /** Complete object files a crash left unindexed: harmless, adopted when written again. */
  unindexed: number;
  /** Anything that breaks the store's invariants; empty when the store is consistent. */
  problems: string[];
}

interface RefRow {
  name: string;
  id: string;
}

interface LogRow {
  name: string;
  from: string | null;
  to: string | null;
  reason: string;
  at: number;
}

export class FsBackend implements StoreBackend {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly madeDirs = new Set<string>();

  private constructor(
    readonly dir: string,
    private readonly db: Database.Database,
  ) {}

  static async open(dir: string): Promise<FsBackend> {
    await mkdir(path.join(dir, 'objects'), { recursive: true });
    // Temp files are only ever half-written objects from a crash: nothing refers to them.
    await rm(path.join(dir, 'tmp'), { recursive: true, force: true });
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path.join(dir, 'meta.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new FerryError('store/bad-version', `The store at ${dir} has schema version ${version}; this Ferry knows ${SCHEMA_VERSION}. Update Ferry.`);
      }
      if (version === 0) {
        db.exec(`
          CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, id TEXT NOT NULL REFERENCES objects(id)) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS reflog (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "from" TEXT, "to" TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
          CREATE INDEX IF NOT EXISTS reflog_by_name ON reflog(name, seq);
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      }
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      throw new FerryError('store/open-failed', `Cannot open the store database in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}. Check the folder is writable and not on a network filesystem.`, { cause });
    }
    return new FsBackend(dir, db);
  }

  private objectPath(id: ObjectId): string {
    return path.join(this.dir, 'objects', id.slice(0, 2), id.slice(2));
  }

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const indexed = await this.hasObjects(ids);
    return Promise.all(
      ids.map(async (id, i) => {
        if (!indexed[i]) return undefined;
        try {
          return new Uint8Array(await readFile(this.objectPath(id)));
        } catch (cause) {
          throw new FerryError('store/corrupt-object', `Object ${id} is indexed but its file cannot be read; the store folder was damaged. Run verify().`, { cause });
        }
      }),
    );
  }

  async hasObjects(ids: readonly ObjectId[]): Promise<boolean[]> {
    const stmt = this.db.prepare<[string], { id: string }>('SELECT id FROM objects WHERE id = ?');
    return ids.map((id) => stmt.get(id) !== undefined);
  }

  commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void> {
    // One commit at a time per process keeps temp names, directory fsyncs and the SQLite transaction in order.
    const run = this.queue.then(() => this.commitNow(objects, refs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async commitNow(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void> {
    // The SQLite index, not the files, says what the store holds, so files may land in any order: write them
    // concurrently (bounded), make their directory entries durable, then index them in the same transaction
    // that moves the refs.
    const dirs = new Set<string>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < objects.length) dirs.add(await this.writeObject(objects[next++]!));
    };
    await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, objects.length) }, worker));
    await Promise.all([...dirs].map(fsyncDir));
    const insertObject = this.db.prepare('INSERT OR IGNORE INTO objects (id, size) VALUES (?, ?)');
    const getRef = this.db.prepare<[string], RefRow>('SELECT name, id FROM refs WHERE name = ?');
    const setRef = this.db.prepare('INSERT INTO refs (name, id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id');
    const deleteRef = this.db.prepare('DELETE FROM refs WHERE name = ?');
    const log = this.db.prepare('INSERT INTO reflog (name, "from", "to", reason, at) VALUES (?, ?, ?, ?, ?)');
    const tx = this.db.transaction(() => {
      for (const r of refs) {
        const actual = getRef.get(r.name)?.id ?? null;
        if (actual !== r.from) throw refConflict(r.name, r.from, actual);
      }
      for (const o of objects) insertObject.run(o.id, o.bytes.length);
      for (const r of refs) {
        if (r.to === null) deleteRef.run(r.name);
        else setRef.run(r.name, r.to);
        log.run(r.name, r.from, r.to, r.reason, r.at);
      }
    });
    try {
      tx.immediate();
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      throw storageError(cause);
    }
  }

  /** Writes one object durably under its final name; returns the directory whose entry must be fsynced. */
  private async writeObject(o: StoredObject): Promise<string> {
    const final = this.objectPath(o.id);
    const dir = path.dirname(final);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const tmp = path.join(this.dir, 'tmp', `${o.id}.${randomBytes(6).toString('hex')}`);
    try {
      const handle = await open(tmp, 'wx');
      try {
        await handle.writeFile(o.bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, final);
    } catch (cause) {
      await rm(tmp, { force: true });
      throw storageError(cause);
    }
    return dir;
  }

  async getRef(name: string): Promise<ObjectId | undefined> {
    return this.db.prepare<[string], RefRow>('SELECT name, id FROM refs WHERE name = ?').get(name)?.id;
  }

  async listRefs(prefix: string): Promise<Ref[]> {
    // substr rather than LIKE, whose "_" wildcard would match inside ref names.
    return this.db
      .prepare<[string, string], RefRow>('SELECT name, id FROM refs WHERE substr(name, 1, length(?)) = ? ORDER BY name')
      .all(prefix, prefix)
      .map((r) => ({ name: r.name, id: r.id }));
  }

  async reflog(name: string): Promise<ReflogEntry[]> {
    return this.db
      .prepare<[string], LogRow>('SELECT name, "from", "to", reason, at FROM reflog WHERE name = ? ORDER BY seq')
      .all(name)
      .map((r) => ({ name: r.name, from: r.from, to: r.to, reason: r.reason, at: r.at }));
  }

  /** Checks every indexed object exists and hashes to its id, and every ref and reflog target is indexed. */
  async verify(): Promise<VerifyReport> {
    const problems: string[] = [];
    const indexed = this.db.prepare<[], { id: string; size: number }>('SELECT id, size FROM objects').all();
    const known = new Set(indexed.map((o) => o.id));
    for (const o of indexed) {
      const bytes = await readFile(this.objectPath(o.id)).catch(() => undefined);
      if (!bytes) problems.push(`object ${o.id} is indexed but its file is missing`);
      else if (bytes.length !== o.size || createHash('sha256').update(bytes).digest('hex') !== o.id) problems.push(`object ${o.id} does not match its id`);
    }
    const refs = this.db.prepare<[], RefRow>('SELECT name, id FROM refs').all();
    for (const r of refs) if (!known.has(r.id)) problems.push(`ref ${r.name} points at missing object ${r.id}`);
    for (const e of this.db.prepare<[], LogRow>('SELECT name, "from", "to", reason, at FROM reflog').all()) {
      for (const id of [e.from, e.to]) if (id !== null && !known.has(id)) problems.push(`reflog of ${e.name} names missing object ${id}`);
    }
    let unindexed = 0;
    for (const fan of await readdir(path.join(this.dir, 'objects'))) {
      for (const rest of await readdir(path.join(this.dir, 'objects', fan))) if (!known.has(fan + rest)) unindexed++;
    }
    const integrity = this.db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') problems.push(`SQLite integrity check: ${String(integrity)}`);
    return { objects: indexed.length, refs: refs.length, unindexed, problems };
  }

  async close(): Promise<void> {
    await this.queue;
    this.db.close();
  }
}

/** A filesystem store with the shared content-addressed layer on top, plus verify(). */
export class FsStore extends ContentStore {
  constructor(override readonly backend: FsBackend) {
    super(backend);
  }

  verify(): Promise<VerifyReport> {
    return this.backend.verify();
  }
}

export async function openFsStore(dir: string): Promise<FsStore> {
  return new FsStore(await FsBackend.open(dir));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function storageError(cause: unknown): FerryError {
  const code = (cause as { code?: string } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return new FerryError('store/quota-exceeded', 'The disk holding the store is full; nothing from this commit is visible. Free space and retry.', { cause });
  }
  return new FerryError('store/write-failed', `Writing to the store failed (${cause instanceof Error ? cause.message : String(cause)}); nothing from this commit is visible.`, { cause });
}
