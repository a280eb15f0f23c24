/**
 * The relay's state, behind three small interfaces, so that the embedded implementation (SQLite and files in the data
 * folder, one process: relay-store.ts, snapshot-registry.ts, run-registry.ts) and a shared one (several relay
 * processes over shared storage) are interchangeable. The API routes and the dispatcher see only these.
 *
 * - ObjectStore: sealed objects under their remote ids (opaque to the relay), written together with ref moves.
 * - SnapshotStore: published snapshots (capability id → sealed manifest, version history, write-token hash, the
 *   structure hints), each publish one atomic commit with the objects that complete it.
 * - RunLog: run records, their event logs (sealed events and the relay's metadata), and read-capability hashes
 *   (run-registry.ts).
 */
import type { SnapshotRecord } from '../../src/core/protocol/index.ts';
import type { ObjectId, ReflogEntry, StoredObject } from '../../src/core/store/index.ts';
import type { VerifyReport } from '../store/index.ts';
import type { PublishInput, SnapshotContents } from './snapshot-registry.ts';

export type { RunLog, LoggedEvent } from './run-registry.ts';

export interface ObjectStore {
  hasObjects(ids: readonly ObjectId[]): Promise<boolean[]>;
  getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]>;
  /** Writes `objects` and moves `refs` atomically (ids are the callers'; nothing is hashed). */
  commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void>;
  /** Checks every object reads back whole and passes `check` (what is wrong, or undefined), and every ref's target. */
  verify(check: (id: ObjectId, bytes: Uint8Array) => string | undefined): Promise<VerifyReport>;
  close(): Promise<void>;
}

export interface SnapshotStore {
  /** Creates a snapshot or moves one (token checked, compare-and-swap), with its objects, in one commit. */
  publish(input: PublishInput): Promise<{ snapshot: SnapshotRecord; writeToken?: string }>;
  create(manifest: string): Promise<{ snapshot: SnapshotRecord; writeToken: string }>;
  update(id: string, token: string, manifest: string, expect: string): Promise<SnapshotRecord>;
  get(id: string): Promise<SnapshotRecord | undefined>;
  /** The record, its sealed manifest and the structure objects published after version `since`. */
  contents(id: string, since: number | undefined, limits: { maxBytes: number; maxObjects: number }): Promise<SnapshotContents>;
  /** Throws unless `token` is the write token of snapshot `id` (constant time). */
  authorize(id: string, token: string): void;
}
