/**
 * Published snapshots. A snapshot is a ref `snapshots/<capability id>` in the relay's object store, pointing at the
 * sealed manifest: moving it is the store's atomic compare-and-swap, and its reflog is the snapshot's history
 * (version = number of moves). The write token's SHA-256 (the token itself is never stored) and the structure
 * hints live in tables of the store's own SQLite database and change in the transaction that moves the ref: one
 * publish — its new objects, the move, a new snapshot's token — is one atomic, durable commit. After a crash all of
 * it is there or none of it is visible.
 *
 * Structure hints: a publisher says which of the objects it sends with a publish are the session's structure
 * (heads, checkpoints, chunk lists: everything but pages). The relay cannot read them; it remembers which remote
 * ids came with which manifest, so a reader gets the structure with the record in one round trip instead of one
 * per level of the session graph. A hint is only ever a shortcut: the reader verifies and walks everything itself.
 */
import type Database from 'better-sqlite3';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import type { SnapshotRecord } from '../../src/core/protocol/index.ts';
import type { ReflogEntry } from '../../src/core/store/index.ts';
import type { FsBackend } from '../store/index.ts';
import { hashToken, newSnapshotId, newWriteToken, tokenMatches } from './tokens.ts';

interface Row {
  token_hash: Buffer;
  created_at: number;
}

const refName = (id: string): string => `snapshots/${id}`;

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
}

export interface SnapshotContents {
  snapshot: SnapshotRecord;
  manifest: Uint8Array;
  objects: { id: string; bytes: Uint8Array }[];
}

export class SnapshotRegistry {
  private constructor(
    private readonly db: Database.Database,
    private readonly objects: FsBackend,
  ) {}

  static open(dir: string, objects: FsBackend): SnapshotRegistry {
    const db = objects.database;
    try {
      db.exec(`
        CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS snapshot_structure (snapshot TEXT NOT NULL, manifest TEXT NOT NULL, ids BLOB NOT NULL, PRIMARY KEY (snapshot, manifest)) WITHOUT ROWID;
      `);
      adoptLegacy(db, path.join(dir, LEGACY_FILE));
    } catch (cause) {
      throw new FerryError('store/open-failed', `Cannot open the snapshot registry in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}.`, { cause });
    }
    return new SnapshotRegistry(db, objects);
  }

  private row(id: string): Row | undefined {
    return this.db.prepare<[string], Row>('SELECT token_hash, created_at FROM snapshots WHERE id = ?').get(id);
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
      const row = this.row(update.id);
      if (!row || !(await this.objects.getRef(refName(update.id)))) throw unknownSnapshot(update.id);
      if (!tokenMatches(update.token, row.token_hash)) throw badToken();
    }
    if (!input.objects.some((o) => o.id === input.manifest)) await this.requireObject(input.manifest);
    const hints = Buffer.concat(input.structure.map((id) => Buffer.from(id, 'hex')));
    const at = Date.now();
    const id = update?.id ?? newSnapshotId();
    const writeToken = update ? undefined : newWriteToken();
    const move: ReflogEntry = { name: refName(id), from: update?.expect ?? null, to: input.manifest, reason: update ? 'update' : 'publish', at };
    await this.objects.commit(input.objects, [move], (db) => {
      if (writeToken) db.prepare('INSERT INTO snapshots (id, token_hash, created_at) VALUES (?, ?, ?)').run(id, hashToken(writeToken), at);
      if (hints.length > 0) db.prepare('INSERT OR REPLACE INTO snapshot_structure (snapshot, manifest, ids) VALUES (?, ?, ?)').run(id, input.manifest, hints);
    });
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
   * The record, its sealed manifest and — from version `since` on — the structure objects published after it,
   * newest publish first, up to `maxBytes` and `maxObjects` (a reader fetches anything beyond by id).
   */
  async contents(id: string, since: number | undefined, limits: { maxBytes: number; maxObjects: number }): Promise<SnapshotContents> {
    const loaded = await this.load(id);
    if (!loaded) throw unknownSnapshot(id);
    const { record, log } = loaded;
    const [manifest] = await this.objects.getObjects([record.manifest]);
    if (!manifest) throw new FerryError('store/missing-object', `Snapshot ${id} points at manifest ${record.manifest}, which the relay's store lacks; the store is damaged.`);
    const objects: { id: string; bytes: Uint8Array }[] = [];
    if (since === undefined || since >= record.version) return { snapshot: record, manifest, objects };
    const hint = this.db.prepare<[string, string], { ids: Buffer }>('SELECT ids FROM snapshot_structure WHERE snapshot = ? AND manifest = ?');
    const ids = new Set<string>();
    for (const entry of log.slice(since).reverse()) {
      const row = entry.to === null ? undefined : hint.get(id, entry.to);
      for (let at = 0; row && at + 32 <= row.ids.length; at += 32) ids.add(row.ids.subarray(at, at + 32).toString('hex'));
    }
    let bytes = 0;
    const wanted = [...ids];
    // Read in small groups so a long history never holds more than a group beyond the cap in memory.
    for (let i = 0; i < wanted.length; i += 32) {
      const group = wanted.slice(i, i + 32);
      const found = await this.objects.getObjects(group);
      for (const [j, b] of found.entries()) {
        if (!b) continue;
        if (objects.length >= limits.maxObjects || bytes + b.length > limits.maxBytes) return { snapshot: record, manifest, objects };
        objects.push({ id: group[j]!, bytes: b });
        bytes += b.length;
      }
    }
    return { snapshot: record, manifest, objects };
  }

  private async load(id: string): Promise<{ record: SnapshotRecord; log: ReflogEntry[] } | undefined> {
    const row = this.row(id);
    const manifest = row && (await this.objects.getRef(refName(id)));
    if (!row || !manifest) return undefined;
    const log = await this.objects.reflog(refName(id));
    return { record: { id, manifest, version: log.length, createdAt: row.created_at, updatedAt: Math.round(log.at(-1)?.at ?? row.created_at) }, log };
  }

  /** Throws unless `token` is the write token of snapshot `id` (constant time). */
  authorize(id: string, token: string): void {
    const row = this.row(id);
    if (!row) throw unknownSnapshot(id);
    if (!tokenMatches(token, row.token_hash)) throw badToken();
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
