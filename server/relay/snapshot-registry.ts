/**
 * Published snapshots. A snapshot is a ref `snapshots/<capability id>` in the relay's object store, pointing at the
 * sealed manifest: moving it is the store's atomic compare-and-swap (the manifest must be stored), and its reflog
 * is the snapshot's history (version = number of moves). The write token's SHA-256 lives beside it in a small
 * SQLite table; the token itself is never stored.
 */
import Database from 'better-sqlite3';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import type { SnapshotRecord } from '../../src/core/protocol/index.ts';
import type { FsBackend } from '../store/index.ts';
import { hashToken, newSnapshotId, newWriteToken, tokenMatches } from './tokens.ts';

interface Row {
  token_hash: Buffer;
  created_at: number;
}

const refName = (id: string): string => `snapshots/${id}`;

export class SnapshotRegistry {
  private constructor(
    private readonly db: Database.Database,
    private readonly objects: FsBackend,
  ) {}

  static open(dir: string, objects: FsBackend): SnapshotRegistry {
    let db: Database.Database;
    try {
      db = new Database(path.join(dir, 'snapshots.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec('CREATE TABLE IF NOT EXISTS snapshots (id TEXT PRIMARY KEY, token_hash BLOB NOT NULL, created_at INTEGER NOT NULL) WITHOUT ROWID');
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

  async create(manifest: string): Promise<{ snapshot: SnapshotRecord; writeToken: string }> {
    await this.requireObject(manifest);
    const id = newSnapshotId();
    const writeToken = newWriteToken();
    const now = Date.now();
    // The token row first: a crash before the ref moves leaves a row without a ref, which reads as "no such snapshot".
    this.db.prepare('INSERT INTO snapshots (id, token_hash, created_at) VALUES (?, ?, ?)').run(id, hashToken(writeToken), now);
    try {
      await this.objects.commit([], [{ name: refName(id), from: null, to: manifest, reason: 'publish', at: now }]);
    } catch (err) {
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
      throw err;
    }
    return { snapshot: (await this.get(id))!, writeToken };
  }

  async get(id: string): Promise<SnapshotRecord | undefined> {
    const row = this.row(id);
    const manifest = row && (await this.objects.getRef(refName(id)));
    if (!row || !manifest) return undefined;
    const log = await this.objects.reflog(refName(id));
    return { id, manifest, version: log.length, createdAt: row.created_at, updatedAt: Math.round(log.at(-1)?.at ?? row.created_at) };
  }

  /** Throws unless `token` is the write token of snapshot `id` (constant time). */
  authorize(id: string, token: string): void {
    const row = this.row(id);
    if (!row) throw unknownSnapshot(id);
    if (!tokenMatches(token, row.token_hash)) throw new FerryError('relay/bad-token', 'The write token does not match this snapshot; only its publisher can update it.');
  }

  /** Checks the token (constant time), then moves the snapshot from `expect` to `manifest` atomically. */
  async update(id: string, token: string, manifest: string, expect: string): Promise<SnapshotRecord> {
    const row = this.row(id);
    if (!row || !(await this.objects.getRef(refName(id)))) throw unknownSnapshot(id);
    if (!tokenMatches(token, row.token_hash)) throw new FerryError('relay/bad-token', 'The write token does not match this snapshot; only its publisher can update it.');
    await this.requireObject(manifest);
    await this.objects.commit([], [{ name: refName(id), from: expect, to: manifest, reason: 'update', at: Date.now() }]);
    return (await this.get(id))!;
  }

  close(): void {
    this.db.close();
  }
}

export const unknownSnapshot = (id: string): FerryError =>
  new FerryError('relay/unknown-snapshot', `There is no snapshot ${id} on this relay; check the link was copied whole.`);
