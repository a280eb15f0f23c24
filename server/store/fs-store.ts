/**
 * The server's Store: object bytes in files, refs/reflog/object index in SQLite.
 *
 * Files: a commit of one object writes it alone as objects/ab/<id>; a commit of several writes them all into one
 * pack file, packs/<name>.pack, indexed by offset — one file to make durable instead of one per object (and per
 * fan-out directory), which is most of a commit's cost on a real disk. Packs and loose files are immutable.
 *
 * Durability order for one commit: the new file is written to tmp/, fsynced, renamed into place, and its directory
 * fsynced; only then does one SQLite transaction (compare-and-swap the refs, append the reflog, index the objects)
 * commit. `has` and `get` answer from that index, never from the directory. A crash before that transaction leaves
 * complete but unindexed files (ignored, written again on the next put, reported by verify); a crash after it
 * leaves everything. Either way no ref points at a missing object. SQLite runs in WAL mode with synchronous=FULL:
 * NORMAL would also stay consistent (WAL commits are atomic), but could forget the last acknowledged commits on
 * power loss, and "nothing acknowledged is lost" is the product's promise; that fsync is small next to the file's.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { ContentStore, refConflict, type ObjectId, type Ref, type ReflogEntry, type StoreBackend, type StoredObject } from '../../src/core/store/index.ts';

/** 2: objects may live in pack files (columns pack, offset). Version 1 stores are upgraded when opened. */
const SCHEMA_VERSION = 2;

export interface VerifyReport {
  objects: number;
  refs: number;
  /** Complete object or pack files a crash left unindexed: harmless (an object is adopted when written again). */
  unindexed: number;
  /** Anything that breaks the store's invariants; empty when the store is consistent. */
  problems: string[];
}

interface ObjectRow {
  id: string;
  size: number;
  /** The pack file's name, or null for a loose file. */
  pack: string | null;
  offset: number | null;
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
    await mkdir(path.join(dir, 'packs'), { recursive: true });
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
          CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, size INTEGER NOT NULL, pack TEXT, offset INTEGER) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, id TEXT NOT NULL REFERENCES objects(id)) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS reflog (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "from" TEXT, "to" TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
          CREATE INDEX IF NOT EXISTS reflog_by_name ON reflog(name, seq);
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      } else if (version === 1) {
        // Every object of a version 1 store is a loose file: the new columns stay null for them.
        db.transaction(() => {
          db.exec('ALTER TABLE objects ADD COLUMN pack TEXT; ALTER TABLE objects ADD COLUMN offset INTEGER;');
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
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

  private packPath(pack: string): string {
    return path.join(this.dir, 'packs', `${pack}.pack`);
  }

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const stmt = this.db.prepare<[string], ObjectRow>('SELECT id, size, pack, offset FROM objects WHERE id = ?');
    const rows = ids.map((id) => stmt.get(id));
    // Each pack is opened once however many of its objects are asked for.
    const byPack = new Map<string, ObjectRow[]>();
    for (const row of rows) if (row?.pack) byPack.set(row.pack, [...(byPack.get(row.pack) ?? []), row]);
    const packed = new Map<ObjectId, Uint8Array>();
    await Promise.all([...byPack].map(async ([pack, members]) => {
      for (const [i, bytes] of (await this.readPacked(pack, members)).entries()) packed.set(members[i]!.id, bytes);
    }));
    return Promise.all(
      rows.map(async (row) => {
        if (!row) return undefined;
        if (row.pack) return packed.get(row.id)!;
        try {
          return new Uint8Array(await readFile(this.objectPath(row.id)));
        } catch (cause) {
          throw corruptObject(row.id, cause);
        }
      }),
    );
  }

  /** The bytes of `members`, objects of pack `pack`, in their order; a missing or short pack is damage. */
  private async readPacked(pack: string, members: readonly ObjectRow[]): Promise<Uint8Array[]> {
    let handle;
    try {
      handle = await open(this.packPath(pack), 'r');
    } catch (cause) {
      throw corruptObject(members[0]!.id, cause);
    }
    try {
      const out: Uint8Array[] = [];
      for (const m of members) {
        const bytes = new Uint8Array(m.size);
        const { bytesRead } = await handle.read(bytes, 0, m.size, m.offset);
        if (bytesRead !== m.size) throw corruptObject(m.id);
        out.push(bytes);
      }
      return out;
    } finally {
      await handle.close();
    }
  }

  async hasObjects(ids: readonly ObjectId[]): Promise<boolean[]> {
    const stmt = this.db.prepare<[string], { id: string }>('SELECT id FROM objects WHERE id = ?');
    return ids.map((id) => stmt.get(id) !== undefined);
  }

  /**
   * The commit of StoreBackend. `alongside`, when given, runs inside the same SQLite transaction after the refs
   * moved, on `database`: rows of tables that must change atomically with them (the relay's snapshot registry)
   * cost no durable write of their own, and a throw from it undoes the whole commit.
   */
  commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[], alongside?: (db: Database.Database) => void): Promise<void> {
    // One commit at a time per process keeps temp names, directory fsyncs and the SQLite transaction in order.
    const run = this.queue.then(() => this.commitNow(objects, refs, alongside));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The store's SQLite database, for tables that live beside its own and commit with it (see `commit`). */
  get database(): Database.Database {
    return this.db;
  }

  private async commitNow(objects: readonly StoredObject[], refs: readonly ReflogEntry[], alongside?: (db: Database.Database) => void): Promise<void> {
    // The SQLite index, not the files, says what the store holds: the file is made durable first, then indexed in
    // the same transaction that moves the refs.
    const located: { id: ObjectId; size: number; pack: string | null; offset: number | null }[] = [];
    if (objects.length === 1) {
      await fsyncDir(await this.writeFile(this.objectPath(objects[0]!.id), objects));
      located.push({ id: objects[0]!.id, size: objects[0]!.bytes.length, pack: null, offset: null });
    } else if (objects.length > 1) {
      const pack = randomBytes(12).toString('hex');
      await fsyncDir(await this.writeFile(this.packPath(pack), objects));
      let offset = 0;
      for (const o of objects) {
        located.push({ id: o.id, size: o.bytes.length, pack, offset });
        offset += o.bytes.length;
      }
    }
    const insertObject = this.db.prepare('INSERT OR IGNORE INTO objects (id, size, pack, offset) VALUES (?, ?, ?, ?)');
    const getRef = this.db.prepare<[string], RefRow>('SELECT name, id FROM refs WHERE name = ?');
    const setRef = this.db.prepare('INSERT INTO refs (name, id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id');
    const deleteRef = this.db.prepare('DELETE FROM refs WHERE name = ?');
    const log = this.db.prepare('INSERT INTO reflog (name, "from", "to", reason, at) VALUES (?, ?, ?, ?, ?)');
    const tx = this.db.transaction(() => {
      for (const r of refs) {
        const actual = getRef.get(r.name)?.id ?? null;
        if (actual !== r.from) throw refConflict(r.name, r.from, actual);
      }
      for (const o of located) insertObject.run(o.id, o.size, o.pack, o.offset);
      for (const r of refs) {
        if (r.to === null) deleteRef.run(r.name);
        else setRef.run(r.name, r.to);
        log.run(r.name, r.from, r.to, r.reason, r.at);
      }
      alongside?.(this.db);
    });
    try {
      tx.immediate();
    } catch (cause) {
      // A pack is this commit's alone (a fresh name): nothing indexes it now, so it goes (a loose file may be shared).
      const pack = located[0]?.pack;
      if (pack) await rm(this.packPath(pack), { force: true });
      if (cause instanceof FerryError) throw cause;
      throw storageError(cause);
    }
  }

  /** Writes `objects`' bytes, one after another, durably as file `final`; returns the directory whose entry must be fsynced. */
  private async writeFile(final: string, objects: readonly StoredObject[]): Promise<string> {
    const dir = path.dirname(final);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
    }
    const tmp = path.join(this.dir, 'tmp', `${path.basename(final)}.${randomBytes(6).toString('hex')}`);
    try {
      const handle = await open(tmp, 'wx');
      try {
        // writev writes as much as it can per call: go on until every byte is down.
        const rest = objects.map((o) => o.bytes);
        while (rest.length > 0) {
          let { bytesWritten } = await handle.writev(rest);
          while (rest.length > 0 && bytesWritten >= rest[0]!.length) bytesWritten -= rest.shift()!.length;
          if (rest.length > 0 && bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
        }
        // The data and the file's size; its name becomes durable with the directory fsync after the rename.
        await handle.datasync();
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
  /**
   * Checks every indexed object reads back whole and is what its id says: by default that it hashes to its id (a
   * content-addressed store); a store whose ids are not content hashes (the relay's HMAC ids) passes its own check,
   * which returns what is wrong with an object, or undefined.
   */
  async verify(check: (id: ObjectId, bytes: Uint8Array) => string | undefined = hashesToId): Promise<VerifyReport> {
    const problems: string[] = [];
    const indexed = this.db.prepare<[], ObjectRow>('SELECT id, size, pack, offset FROM objects').all();
    const known = new Set(indexed.map((o) => o.id));
    for (const o of indexed) {
      const bytes = o.pack
        ? await this.readPacked(o.pack, [o]).then(([b]) => b, () => undefined)
        : await readFile(this.objectPath(o.id)).catch(() => undefined);
      if (!bytes) problems.push(`object ${o.id} is indexed but its file is missing`);
      else if (bytes.length !== o.size) problems.push(`object ${o.id} does not match its id`);
      else {
        const problem = check(o.id, bytes);
        if (problem) problems.push(`object ${o.id} ${problem}`);
      }
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
    const packs = new Set(indexed.map((o) => o.pack).filter((p): p is string => p !== null));
    for (const file of await readdir(path.join(this.dir, 'packs'))) if (!packs.has(file.replace(/\.pack$/, ''))) unindexed++;
    const integrity = this.db.pragma('integrity_check', { simple: true });
    if (integrity !== 'ok') problems.push(`SQLite integrity check: ${String(integrity)}`);
    return { objects: indexed.length, refs: refs.length, unindexed, problems };
  }

  async close(): Promise<void> {
    await this.queue;
    this.db.close();
  }
}

const hashesToId = (id: ObjectId, bytes: Uint8Array): string | undefined => (createHash('sha256').update(bytes).digest('hex') === id ? undefined : 'does not match its id');

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

const corruptObject = (id: ObjectId, cause?: unknown): FerryError =>
  new FerryError('store/corrupt-object', `Object ${id} is indexed but its file cannot be read; the store folder was damaged. Run verify().`, cause === undefined ? {} : { cause });

function storageError(cause: unknown): FerryError {
  const code = (cause as { code?: string } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL') {
    return new FerryError('store/quota-exceeded', 'The disk holding the store is full; nothing from this commit is visible. Free space and retry.', { cause });
  }
  return new FerryError('store/write-failed', `Writing to the store failed (${cause instanceof Error ? cause.message : String(cause)}); nothing from this commit is visible.`, { cause });
}
