/**
 * Published snapshots. A snapshot is a ref `snapshots/<capability id>` in the relay's object store, pointing at the
 * sealed manifest: moving it is the store's atomic compare-and-swap, and its reflog is the snapshot's history
 * (version = number of moves). The write token's SHA-256 (the token itself is never stored) and the structure
 * hints live in tables beside the store's refs (its SQLite database, or Postgres for the shared store) and change
 * in the transaction that moves the ref: one publish — its new objects, the move, a new snapshot's token — is one
 * atomic, durable commit. After a crash all of it is there or none of it is visible.
 *
 * Hints: a publisher says which of the objects it sends with a publish are the session's structure (heads,
 * checkpoints, chunk lists); the others in that request are its pages. The relay cannot read them; it remembers
 * which remote ids came with which manifest, so a reader gets the structure and then the pages with the record, in
 * one round trip instead of one per level of the session graph and one more for the pages. A hint is only ever a
 * shortcut: the reader verifies and walks everything itself.
 */
import type Database from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import type { SnapshotRecord } from '../../src/core/protocol/index.ts';
import type { ReflogEntry, StoreBackend, StoredObject } from '../../src/core/store/index.ts';
import type { FsBackend } from '../store/index.ts';
import { hashToken, newSnapshotId, newWriteToken, tokenMatches } from './tokens.ts';

const refName = (id: string): string => `snapshots/${id}`;

/** Pages go with the contents up to this many bytes; beyond, a reader's framed fetch by id moves them faster than JSON. */
const PAGES_ALONG_BYTES = 1 << 20;

/** Where the registry lived before it moved into the store's database; its rows are moved over on open. */
const LEGACY_FILE = 'snapshots.sqlite';

export interface PublishInput {
  /** Absent: a new snapshot under a fresh id and write token. */
  update?: { id: string; token: string; expect: string };
  manifest: string;
  /** Sealed objects to store with the move (those the relay already holds may be left out). */
  objects: readonly { id: string; bytes: Uint8Array }[];
  /** Remote ids of this publish's structure objects (see above). */
  structure: readonly string[];
  /** Remote ids of the pages that came with it (see above); absent: none. */
  pages?: readonly string[];
}

export interface SnapshotContents {
  snapshot: SnapshotRecord;
  manifest: Uint8Array;
  objects: { id: string; bytes: Uint8Array }[];
}

/**
 * Where the registry keeps its rows, beside the object store whose refs the snapshots are: SQLite next to the
 * filesystem store (one process), or Postgres next to the shared store (replicas). Rows only; every rule is the
 * registry's.
 */
export interface SnapshotTables {
  readonly objects: StoreBackend;
  row(id: string): Promise<{ tokenHash: Uint8Array; createdAt: number } | undefined>;
  /** The hints recorded for those of `manifests` of snapshot `id` that have any, in the order of `manifests`. */
  hints(id: string, manifests: readonly string[]): Promise<PublishHints[]>;
  /** Stores `objects` and moves the ref, with a new snapshot's row and this publish's hints, in one atomic commit. */
  commit(objects: readonly StoredObject[], move: ReflogEntry, created: { id: string; tokenHash: Uint8Array; at: number } | undefined, hints: ({ snapshot: string; manifest: string } & PublishHints) | undefined): Promise<void>;
}

/** What one publish hinted: its structure objects' and its pages' remote ids (32 bytes each, concatenated). */
export interface PublishHints {
  ids: Uint8Array;
  /** Empty when the publish sent no pages. */
  pages: Uint8Array;
}

/** The embedded tables: in the filesystem store's own SQLite database, committed with its refs. */
export class SqliteSnapshotTables implements SnapshotTables {
  private readonly db: Database.Database;

  constructor(
    readonly objects: FsBackend,
    dir: string,
  ) {
    this.db = objects.database;
    try {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS snapshot_structure (snapshot TEXT NOT NULL, manifest TEXT NOT NULL, ids BLOB NOT NULL, pages BLOB, PRIMARY KEY (snapshot, manifest)) WITHOUT ROWID;
      `);
      // Registries from before page hints: their publishes hint no pages (readers fetch those by id).
      if (!this.db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('snapshot_structure')").all().some((c) => c.name === 'pages')) {
        this.db.exec('ALTER TABLE snapshot_structure ADD COLUMN pages BLOB');
      }
      adoptLegacy(this.db, path.join(dir, LEGACY_FILE));
    } catch (cause) {
      throw new FerryError('store/open-failed', `Cannot open the snapshot registry in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}.`, { cause });
    }
  }

  async row(id: string): Promise<{ tokenHash: Uint8Array; createdAt: number } | undefined> {
    const row = this.db.prepare<[string], { token_hash: Buffer; created_at: number }>('SELECT token_hash, created_at FROM snapshots WHERE id = ?').get(id);
    return row && { tokenHash: row.token_hash, createdAt: row.created_at };
  }

  async hints(id: string, manifests: readonly string[]): Promise<PublishHints[]> {
    const hint = this.db.prepare<[string, string], { ids: Buffer; pages: Buffer | null }>('SELECT ids, pages FROM snapshot_structure WHERE snapshot = ? AND manifest = ?');
    return manifests.flatMap((m) => {
      const row = hint.get(id, m);
      return row ? [{ ids: row.ids, pages: row.pages ?? new Uint8Array() }] : [];
    });
  }

  commit(objects: readonly StoredObject[], move: ReflogEntry, created: { id: string; tokenHash: Uint8Array; at: number } | undefined, hints: ({ snapshot: string; manifest: string } & PublishHints) | undefined): Promise<void> {
    return this.objects.commit(objects, [move], (db) => {
      if (created) db.prepare('INSERT INTO snapshots (id, token_hash, created_at) VALUES (?, ?, ?)').run(created.id, created.tokenHash, created.at);
      if (hints) db.prepare('INSERT OR REPLACE INTO snapshot_structure (snapshot, manifest, ids, pages) VALUES (?, ?, ?, ?)').run(hints.snapshot, hints.manifest, hints.ids, hints.pages.length > 0 ? hints.pages : null);
    });
  }
}

export class SnapshotRegistry {
  private readonly objects: StoreBackend;

  constructor(private readonly tables: SnapshotTables) {
    this.objects = tables.objects;
  }

  private async requireObject(id: string): Promise<void> {
    const [present] = await this.objects.hasObjects([id]);
    if (!present) throw new FerryError('relay/missing-object', `The manifest ${id} is not on the relay; upload it (and every object it reaches) before publishing.`);
  }

  /**
   * Creates a snapshot or moves one (write token checked in constant time, compare-and-swap on `expect`), storing
   * `objects` and the structure hints in the same commit. Checks, in order: the snapshot exists, the token, the
   * manifest is there (or comes along), the snapshot still points at `expect`.
   */
  async publish(input: PublishInput): Promise<{ snapshot: SnapshotRecord; writeToken?: string }> {
    const update = input.update;
    if (update) {
      const row = await this.tables.row(update.id);
      if (!row || !(await this.objects.getRef(refName(update.id)))) throw unknownSnapshot(update.id);
      if (!tokenMatches(update.token, row.tokenHash)) throw badToken();
    }
    if (!input.objects.some((o) => o.id === input.manifest)) await this.requireObject(input.manifest);
    const packed = (ids: readonly string[]): Buffer => Buffer.concat(ids.map((id) => Buffer.from(id, 'hex')));
    const hints = packed(input.structure);
    const pages = packed((input.pages ?? []).filter((p) => p !== input.manifest));
    const at = Date.now();
    const id = update?.id ?? newSnapshotId();
    const writeToken = update ? undefined : newWriteToken();
    const move: ReflogEntry = { name: refName(id), from: update?.expect ?? null, to: input.manifest, reason: update ? 'update' : 'publish', at };
    await this.tables.commit(
      input.objects,
      move,
      writeToken ? { id, tokenHash: hashToken(writeToken), at } : undefined,
      hints.length > 0 || pages.length > 0 ? { snapshot: id, manifest: input.manifest, ids: hints, pages } : undefined,
    );
    const snapshot = (await this.load(id))!.record;
    return writeToken ? { snapshot, writeToken } : { snapshot };
  }

  async create(manifest: string): Promise<{ snapshot: SnapshotRecord; writeToken: string }> {
    const { snapshot, writeToken } = await this.publish({ manifest, objects: [], structure: [] });
    return { snapshot, writeToken: writeToken! };
  }

  /** Checks the token (constant time), then moves the snapshot from `expect` to `manifest` atomically. */
  async update(id: string, token: string, manifest: string, expect: string): Promise<SnapshotRecord> {
    return (await this.publish({ update: { id, token, expect }, manifest, objects: [], structure: [] })).snapshot;
  }

  async get(id: string): Promise<SnapshotRecord | undefined> {
    return (await this.load(id))?.record;
  }

  /**
   * The record, its sealed manifest and — from version `since` on — the structure objects published after it, newest
   * publish first, then their pages likewise, up to `maxBytes` and `maxObjects` (a reader fetches anything beyond by id).
   */
  async contents(id: string, since: number | undefined, limits: { maxBytes: number; maxObjects: number }): Promise<SnapshotContents> {
    const loaded = await this.load(id);
    if (!loaded) throw unknownSnapshot(id);
    const { record, log } = loaded;
    const [manifest] = await this.objects.getObjects([record.manifest]);
    if (!manifest) throw new FerryError('store/missing-object', `Snapshot ${id} points at manifest ${record.manifest}, which the relay's store lacks; the store is damaged.`);
    const objects: { id: string; bytes: Uint8Array }[] = [];
    if (since === undefined || since >= record.version) return { snapshot: record, manifest, objects };
    const rows = await this.tables.hints(id, log.slice(since).reverse().map((e) => e.to).filter((m): m is string => m !== null));
    const structure = new Set<string>();
    const pages = new Set<string>();
    const add = (into: Set<string>, packed: Uint8Array | undefined): void => {
      for (let at = 0; packed && at + 32 <= packed.length; at += 32) into.add(Buffer.from(packed.subarray(at, at + 32)).toString('hex'));
    };
    for (const row of rows) add(structure, row.ids);
    for (const row of rows) add(pages, row.pages);
    let bytes = 0;
    /** Appends the held objects among `wanted` while the total stays within `maxBytes`; false once it stopped there. */
    const take = async (wanted: readonly string[], maxBytes: number): Promise<boolean> => {
      // Read in small groups so a long history never holds more than a group beyond the cap in memory.
      for (let i = 0; i < wanted.length; i += 32) {
        const group = wanted.slice(i, i + 32);
        const found = await this.objects.getObjects(group);
        for (const [j, b] of found.entries()) {
          if (!b) continue;
          if (objects.length >= limits.maxObjects || bytes + b.length > maxBytes) return false;
          objects.push({ id: group[j]!, bytes: b });
          bytes += b.length;
        }
      }
      return true;
    };
    if (await take([...structure], limits.maxBytes)) await take([...pages].filter((p) => !structure.has(p)), Math.min(limits.maxBytes, bytes + PAGES_ALONG_BYTES));
    return { snapshot: record, manifest, objects };
  }

  private async load(id: string): Promise<{ record: SnapshotRecord; log: ReflogEntry[] } | undefined> {
    const row = await this.tables.row(id);
    const manifest = row && (await this.objects.getRef(refName(id)));
    if (!row || !manifest) return undefined;
    const log = await this.objects.reflog(refName(id));
    return { record: { id, manifest, version: log.length, createdAt: row.createdAt, updatedAt: Math.round(log.at(-1)?.at ?? row.createdAt) }, log };
  }

  /** Throws unless `token` is the write token of snapshot `id` (constant time). */
  async authorize(id: string, token: string): Promise<void> {
    const row = await this.tables.row(id);
    if (!row) throw unknownSnapshot(id);
    if (!tokenMatches(token, row.tokenHash)) throw badToken();
  }
}

/**
 * Moves the rows of a registry kept in its own database file (before publishes became one commit) into the
 * store's database, then removes the old file. Idempotent: a crash in between copies them again, ignoring those
 * already there; the old file goes last, after the copy is durable.
 */
function adoptLegacy(db: Database.Database, file: string): void {
  if (!existsSync(file)) return;
  db.prepare('ATTACH DATABASE ? AS legacy').run(file);
  try {
    db.exec('INSERT OR IGNORE INTO main.snapshots (id, token_hash, created_at) SELECT id, token_hash, created_at FROM legacy.snapshots');
  } finally {
    db.exec('DETACH DATABASE legacy');
  }
  for (const f of [`${file}-wal`, `${file}-shm`, file]) rmSync(f, { force: true });
}

export const unknownSnapshot = (id: string): FerryError =>
  new FerryError('relay/unknown-snapshot', `There is no snapshot ${id} on this relay; check the link was copied whole.`);

const badToken = (): FerryError => new FerryError('relay/bad-token', 'The write token does not match this snapshot; only its publisher can update it.');
