/**
 * The server's Store: refs/reflog/object index in SQLite, object bytes in files or, for small commits, in the index.
 *
 * Where the bytes go: a commit of at most INLINE_BYTES keeps them in its own index rows (column data), so it costs
 * one durable write, the transaction's — most commits are a step's few small objects. A larger commit of one object
 * writes it alone as objects/ab/<id>; of several, into one pack file, packs/<name>.pack, indexed by offset — one
 * file to make durable instead of one per object (and per fan-out directory). Packs and loose files are immutable.
 *
 * Durability order for one commit: a new file is made durable first — a loose file is written to tmp/, fsynced,
 * renamed into place and its directory fsynced; a pack, whose name is fresh and which nothing indexes yet, is
 * written in place, then it and its directory are fsynced together — and only then does one SQLite transaction
 * (compare-and-swap the refs, append the reflog, index the objects, with their bytes when inline) commit. `has` and
 * `get` answer from that index, never from the directory. A crash before that transaction leaves unindexed files
 * (ignored, written again on the next put, reported by verify); a crash after it leaves everything. Either way no
 * ref points at a missing object. SQLite runs in WAL mode with synchronous=FULL: NORMAL would also stay consistent
 * (WAL commits are atomic), but could forget the last acknowledged commits on power loss, and "nothing acknowledged
 * is lost" is the product's promise.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { ContentStore, refConflict, type ObjectId, type Ref, type ReflogEntry, type StoreBackend, type StoredObject } from '../../src/core/store/index.ts';

/**
 * 2: objects may live in pack files (columns pack, offset). 3: or in the index itself (column data). Earlier stores
 * are upgraded when opened; their objects stay where they are.
 */
const SCHEMA_VERSION = 3;

/** A commit whose objects total at most this many bytes keeps them in the index (see above). */
const INLINE_BYTES = 256 * 1024;

/** Bytes of other objects a pack read may take in to read the wanted ones in one go. */
const SPAN_SLACK = 64 * 1024;

export interface VerifyReport {
  objects: number;
  refs: number;
  /** Object or pack files a crash left unindexed (a pack possibly cut short): harmless, nothing refers to them. */
  unindexed: number;
  /** Anything that breaks the store's invariants; empty when the store is consistent. */
  problems: string[];
}

interface ObjectRow {
  id: string;
  size: number;
  /** The pack file's name, or null for a loose file or bytes in the index. */
  pack: string | null;
  offset: number | null;
  /** The bytes, when the index holds them. */
  data: Buffer | null;
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

export interface FsBackendOptions {
  /**
   * Keeps the objects of the latest commits in memory, up to this many bytes, and answers reads of them from there:
   * a reader right after a writer (a worker resuming what a device has just published) then reads no disk. They are
   * remembered only once their commit is durable, and objects never change. Default 0: every read goes to disk.
   */
  recentBytes?: number;
}

export class FsBackend implements StoreBackend {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly madeDirs = new Set<string>();
  /** The latest committed objects (see FsBackendOptions), oldest first. */
  private readonly recent = new Map<ObjectId, Uint8Array>();
  private recentSize = 0;

  private constructor(
    readonly dir: string,
    private readonly db: Database.Database,
    private readonly recentBytes: number,
  ) {}

  static async open(dir: string, options: FsBackendOptions = {}): Promise<FsBackend> {
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
          CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, size INTEGER NOT NULL, pack TEXT, offset INTEGER, data BLOB) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS refs (name TEXT PRIMARY KEY, id TEXT NOT NULL REFERENCES objects(id)) WITHOUT ROWID;
          CREATE TABLE IF NOT EXISTS reflog (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "from" TEXT, "to" TEXT, reason TEXT NOT NULL, at REAL NOT NULL);
          CREATE INDEX IF NOT EXISTS reflog_by_name ON reflog(name, seq);
          PRAGMA user_version = ${SCHEMA_VERSION};
        `);
      } else if (version < SCHEMA_VERSION) {
        // The objects already stored stay where they are: the new columns stay null for them.
        db.transaction(() => {
          if (version < 2) db.exec('ALTER TABLE objects ADD COLUMN pack TEXT; ALTER TABLE objects ADD COLUMN offset INTEGER;');
          db.exec('ALTER TABLE objects ADD COLUMN data BLOB;');
          db.pragma(`user_version = ${SCHEMA_VERSION}`);
        }).immediate();
      }
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      throw new FerryError('store/open-failed', `Cannot open the store database in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}. Check the folder is writable and not on a network filesystem.`, { cause });
    }
    return new FsBackend(dir, db, options.recentBytes ?? 0);
  }

  private objectPath(id: ObjectId): string {
    return path.join(this.dir, 'objects', id.slice(0, 2), id.slice(2));
  }

  private packPath(pack: string): string {
    return path.join(this.dir, 'packs', `${pack}.pack`);
  }

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const remembered = ids.map((id) => this.recent.get(id));
    if (remembered.every((bytes) => bytes !== undefined)) return remembered.map((bytes) => bytes.slice());
    const stored = await this.readObjects(ids.filter((_, i) => remembered[i] === undefined));
    let next = 0;
    return remembered.map((bytes) => bytes?.slice() ?? stored[next++]);
  }

  private async readObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const stmt = this.db.prepare<[string], ObjectRow>('SELECT id, size, pack, offset, data FROM objects WHERE id = ?');
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
        if (row.data) return inlineBytes(row);
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
  private async readPacked(pack: string, members: readonly Pick<ObjectRow, 'id' | 'size' | 'offset'>[]): Promise<Uint8Array[]> {
    let handle;
    try {
      handle = await open(this.packPath(pack), 'r');
    } catch (cause) {
      throw corruptObject(members[0]!.id, cause);
    }
    try {
      // A publish's objects lie together in one pack: one read of the span they cover rather than one per object,
      // unless the span is mostly other objects.
      const start = Math.min(...members.map((m) => m.offset!));
      const end = Math.max(...members.map((m) => m.offset! + m.size));
      if (end - start <= 2 * members.reduce((n, m) => n + m.size, 0) + SPAN_SLACK) {
        const span = new Uint8Array(end - start);
        const { bytesRead } = await handle.read(span, 0, span.length, start);
        if (bytesRead !== span.length) throw corruptObject(members[0]!.id);
        return members.map((m) => span.slice(m.offset! - start, m.offset! - start + m.size));
      }
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
    const located: { id: ObjectId; size: number; pack: string | null; offset: number | null; data: Buffer | null }[] = [];
    if (objects.reduce((n, o) => n + o.bytes.length, 0) <= INLINE_BYTES) {
      for (const o of objects) located.push({ id: o.id, size: o.bytes.length, pack: null, offset: null, data: Buffer.from(o.bytes.buffer, o.bytes.byteOffset, o.bytes.byteLength) });
    } else if (objects.length === 1) {
      await fsyncDir(await this.writeFile(this.objectPath(objects[0]!.id), objects));
      located.push({ id: objects[0]!.id, size: objects[0]!.bytes.length, pack: null, offset: null, data: null });
    } else if (objects.length > 1) {
      const pack = randomBytes(12).toString('hex');
      await this.writePack(this.packPath(pack), objects);
      let offset = 0;
      for (const o of objects) {
        located.push({ id: o.id, size: o.bytes.length, pack, offset, data: null });
        offset += o.bytes.length;
      }
    }
    const insertObject = this.db.prepare('INSERT OR IGNORE INTO objects (id, size, pack, offset, data) VALUES (?, ?, ?, ?, ?)');
    const getRef = this.db.prepare<[string], RefRow>('SELECT name, id FROM refs WHERE name = ?');
    const setRef = this.db.prepare('INSERT INTO refs (name, id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET id = excluded.id');
    const deleteRef = this.db.prepare('DELETE FROM refs WHERE name = ?');
    const log = this.db.prepare('INSERT INTO reflog (name, "from", "to", reason, at) VALUES (?, ?, ?, ?, ?)');
    const tx = this.db.transaction(() => {
      for (const r of refs) {
        const actual = getRef.get(r.name)?.id ?? null;
        if (actual !== r.from) throw refConflict(r.name, r.from, actual);
      }
      for (const o of located) insertObject.run(o.id, o.size, o.pack, o.offset, o.data);
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
    this.remember(objects);
  }

  /** Keeps copies of `objects` among the latest, dropping the oldest beyond the bound; one over an eighth of it is not kept. */
  private remember(objects: readonly StoredObject[]): void {
    for (const o of objects) {
      if (o.bytes.length > this.recentBytes / 8 || this.recent.has(o.id)) continue;
      this.recent.set(o.id, o.bytes.slice());
      this.recentSize += o.bytes.length;
    }
    for (const [id, bytes] of this.recent) {
      if (this.recentSize <= this.recentBytes) break;
      this.recent.delete(id);
      this.recentSize -= bytes.length;
    }
  }

  /** Writes `objects`' bytes, one after another, durably as file `final`; returns the directory whose entry must be fsynced. */
  private async writeFile(final: string, objects: readonly StoredObject[]): Promise<string> {
    const dir = await this.madeDir(final);
    const tmp = path.join(this.dir, 'tmp', `${path.basename(final)}.${randomBytes(6).toString('hex')}`);
    try {
      const handle = await open(tmp, 'wx');
      try {
        await writeAll(handle, objects);
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

  /**
   * Writes a new pack durably under its own (fresh) name: no temp file and rename, since nothing indexes it until
   * the commit's transaction; its data and its directory entry are made durable together.
   */
  private async writePack(file: string, objects: readonly StoredObject[]): Promise<void> {
    const dir = await this.madeDir(file);
    try {
      const handle = await open(file, 'wx');
      try {
        await writeAll(handle, objects);
        await Promise.all([handle.datasync(), fsyncDir(dir)]);
      } finally {
        await handle.close();
      }
    } catch (cause) {
      await rm(file, { force: true });
      throw storageError(cause);
    }
  }

  /** The directory of `file`, created once. */
  private async madeDir(file: string): Promise<string> {
    const dir = path.dirname(file);
    if (!this.madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      this.madeDirs.add(dir);
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

  /**
   * Checks every indexed object reads back whole and is what its id says: by default that it hashes to its id (a
   * content-addressed store); a store whose ids are not content hashes (the relay's HMAC ids) passes its own check,
   * which returns what is wrong with an object, or undefined.
   */
  async verify(check: (id: ObjectId, bytes: Uint8Array) => string | undefined = hashesToId): Promise<VerifyReport> {
    const problems: string[] = [];
    // Bytes in the index are read one object at a time, not all at once.
    const indexed = this.db.prepare<[], Omit<ObjectRow, 'data'> & { inline: number }>('SELECT id, size, pack, offset, data IS NOT NULL AS inline FROM objects').all();
    const inline = this.db.prepare<[string], { data: Buffer }>('SELECT data FROM objects WHERE id = ?');
    const known = new Set(indexed.map((o) => o.id));
    for (const o of indexed) {
      const bytes = o.inline
        ? inline.get(o.id)!.data
        : o.pack
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

/** Writes every byte of `objects`, one after another (writev writes as much as it can per call). */
async function writeAll(handle: FileHandle, objects: readonly StoredObject[]): Promise<void> {
  const rest = objects.map((o) => o.bytes);
  while (rest.length > 0) {
    let { bytesWritten } = await handle.writev(rest);
    while (rest.length > 0 && bytesWritten >= rest[0]!.length) bytesWritten -= rest.shift()!.length;
    if (rest.length > 0 && bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** An object's bytes from its index row, as a copy of their own. */
function inlineBytes(row: ObjectRow): Uint8Array {
  if (row.data!.length !== row.size) throw corruptObject(row.id);
  return new Uint8Array(row.data!);
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
