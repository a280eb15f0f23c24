/**
 * The one Store interface (DESIGN §3): immutable objects keyed by the SHA-256 of their bytes, and mutable refs
 * (name → object id) moved by compare-and-swap with a reflog. Every implementation is a thin `StoreBackend`;
 * hashing, verification and the invariants live once in `ContentStore` (content-store.ts).
 */

/** Lower-case hex SHA-256 of an object's canonical bytes (64 characters). */
export type ObjectId = string;

export interface StoredObject {
  readonly id: ObjectId;
  readonly bytes: Uint8Array;
}

/** Move `name` from `expect` (null: must not exist) to `next` (null: delete the ref). */
export interface RefUpdate {
  readonly name: string;
  readonly expect: ObjectId | null;
  readonly next: ObjectId | null;
  /** Why it moved (shown in history and the reflog): "append", "fork", "rollback", "import"… */
  readonly reason: string;
}

export interface Ref {
  readonly name: string;
  readonly id: ObjectId;
}

/** One move of a ref, oldest first in `reflog()`. A rolled-back or deleted head stays here. */
export interface ReflogEntry {
  readonly name: string;
  readonly from: ObjectId | null;
  readonly to: ObjectId | null;
  readonly reason: string;
  /** Milliseconds since the epoch. */
  readonly at: number;
}

/** What a storage adapter implements: bytes by id, refs by name, one atomic commit. No hashing, no policy. */
export interface StoreBackend {
  /**
   * True when reads return exactly the bytes committed, from private in-process copies that nothing else can
   * reach (the memory backend): they were hashed on the way in, so re-hashing them on every read is pure cost.
   * Backends over disks or databases leave it unset and every read is verified against its id.
   */
  readonly readsAreVerified?: boolean;
  getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]>;
  hasObjects(ids: readonly ObjectId[]): Promise<boolean[]>;
  /**
   * Atomically writes `objects` and applies `refs`: afterwards either all of them are visible (to `has`, `get` and
   * the refs) or none. If any ref's current value differs from its `from`, throws FerryError 'store/ref-conflict'
   * and nothing becomes visible.
   */
  commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void>;
  getRef(name: string): Promise<ObjectId | undefined>;
  listRefs(prefix: string): Promise<Ref[]>;
  reflog(name: string): Promise<ReflogEntry[]>;
  close(): Promise<void>;
}

/** The Store every part of Ferry uses. */
export interface Store {
  /** Stores bytes and returns their id. Idempotent. */
  put(bytes: Uint8Array): Promise<ObjectId>;
  putMany(objects: readonly Uint8Array[]): Promise<ObjectId[]>;
  get(id: ObjectId): Promise<Uint8Array | undefined>;
  getMany(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]>;
  has(id: ObjectId): Promise<boolean>;
  hasMany(ids: readonly ObjectId[]): Promise<boolean[]>;
  getRef(name: string): Promise<ObjectId | undefined>;
  listRefs(prefix?: string): Promise<Ref[]>;
  reflog(name: string): Promise<ReflogEntry[]>;
  /** Compare-and-swap one ref. The target object must already be stored. */
  setRef(update: RefUpdate): Promise<void>;
  /**
   * Stores `objects` (already hashed) and moves `refs` atomically: either every ref moves and every object is
   * there, or nothing is visible. Every ref target must be in `objects` or already stored. Objects are re-hashed; a
   * wrong id is refused. Sync relies on commits being closure-complete (an object is stored only together with, or
   * after, everything it refers to), which every writer in Ferry keeps.
   */
  commit(objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<void>;
  close(): Promise<void>;
}
