import { ContentStore, refConflict } from './content-store.ts';
import type { ObjectId, Ref, ReflogEntry, Store, StoreBackend, StoredObject } from './types.ts';

/** Objects and refs in Maps. Each commit runs without an await, so it is atomic. */
export class MemoryBackend implements StoreBackend {
  /** Objects are hashed by ContentStore on put and kept as private copies (below), so reads need no re-hash. */
  readonly readsAreVerified = true;
  private readonly objects = new Map<ObjectId, Uint8Array>();
  private readonly refs = new Map<string, ObjectId>();
  private readonly log: ReflogEntry[] = [];

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    return ids.map((id) => this.objects.get(id)?.slice());
  }

  async hasObjects(ids: readonly ObjectId[]): Promise<boolean[]> {
    return ids.map((id) => this.objects.has(id));
  }

  async commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[]): Promise<void> {
    for (const r of refs) {
      const actual = this.refs.get(r.name) ?? null;
      if (actual !== r.from) throw refConflict(r.name, r.from, actual);
    }
    // Copies: callers may reuse their buffers, and stored objects are immutable.
    for (const o of objects) this.objects.set(o.id, o.bytes.slice());
    for (const r of refs) {
      if (r.to === null) this.refs.delete(r.name);
      else this.refs.set(r.name, r.to);
      this.log.push(r);
    }
  }

  async getRef(name: string): Promise<ObjectId | undefined> {
    return this.refs.get(name);
  }

  async listRefs(prefix: string): Promise<Ref[]> {
    return [...this.refs]
      .filter(([name]) => name.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, id]) => ({ name, id }));
  }

  async reflog(name: string): Promise<ReflogEntry[]> {
    return this.log.filter((e) => e.name === name);
  }

  async close(): Promise<void> {}
}

export function createMemoryStore(): Store {
  return new ContentStore(new MemoryBackend());
}
