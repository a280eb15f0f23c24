import { FerryError } from '../errors.ts';
import { assertObjectId, hashesTo, objectId } from './hash.ts';
import { assertRefName } from './refs.ts';
import type { ObjectId, Ref, ReflogEntry, RefUpdate, Store, StoreBackend, StoredObject } from './types.ts';

/**
 * The one smart layer over every backend: computes and checks ids, skips objects already stored, refuses a ref
 * that would point at a missing object, stamps the reflog, and verifies bytes read back against their id.
 */
export class ContentStore implements Store {
  constructor(readonly backend: StoreBackend) {}

  async put(bytes: Uint8Array): Promise<ObjectId> {
    const [id] = await this.putMany([bytes]);
    return id!;
  }

  async putMany(objects: readonly Uint8Array[]): Promise<ObjectId[]> {
    const stored = await Promise.all(objects.map(async (bytes) => ({ id: await objectId(bytes), bytes })));
    await this.writeNew(stored, []);
    return stored.map((o) => o.id);
  }

  async get(id: ObjectId): Promise<Uint8Array | undefined> {
    const [bytes] = await this.getMany([id]);
    return bytes;
  }

  async getMany(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    ids.forEach((id) => assertObjectId(id));
    const found = await this.backend.getObjects(ids);
    if (this.backend.readsAreVerified) return found;
    await Promise.all(
      found.map(async (bytes, i) => {
        if (bytes !== undefined && (await objectId(bytes)) !== ids[i]) {
          throw new FerryError('store/corrupt-object', `Object ${ids[i]} is stored with bytes that do not match its id; the store is damaged. Run verify() and re-sync the session from another copy.`);
        }
      }),
    );
    return found;
  }

  async has(id: ObjectId): Promise<boolean> {
    const [present] = await this.hasMany([id]);
    return present!;
  }

  async hasMany(ids: readonly ObjectId[]): Promise<boolean[]> {
    ids.forEach((id) => assertObjectId(id));
    return ids.length === 0 ? [] : this.backend.hasObjects(ids);
  }

  async getRef(name: string): Promise<ObjectId | undefined> {
    assertRefName(name);
    return this.backend.getRef(name);
  }

  listRefs(prefix = ''): Promise<Ref[]> {
    return this.backend.listRefs(prefix);
  }

  async reflog(name: string): Promise<ReflogEntry[]> {
    assertRefName(name);
    return this.backend.reflog(name);
  }

  setRef(update: RefUpdate): Promise<void> {
    return this.commit([], [update]);
  }

  async commit(objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<void> {
    await Promise.all(
      objects.map(async (o) => {
        assertObjectId(o.id);
        if (!(await hashesTo(o.bytes, o.id))) {
          throw new FerryError('store/id-mismatch', `Object ${o.id} was given bytes whose SHA-256 differs; ids are always the hash of the bytes.`);
        }
      }),
    );
    await this.writeNew(objects, refs);
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  private async writeNew(objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<void> {
    const names = new Set<string>();
    for (const r of refs) {
      assertRefName(r.name);
      if (r.expect !== null) assertObjectId(r.expect, 'expected ref value');
      if (r.next !== null) assertObjectId(r.next, 'ref target');
      if (names.has(r.name)) throw new FerryError('store/duplicate-ref', `Ref ${r.name} appears twice in one commit; move each ref at most once per commit.`);
      names.add(r.name);
    }
    const unique = [...new Map(objects.map((o) => [o.id, o])).values()];
    const present = await this.hasMany(unique.map((o) => o.id));
    const fresh = unique.filter((_, i) => !present[i]);
    const inBatch = new Set(unique.map((o) => o.id));
    const targets = refs.map((r) => r.next).filter((id): id is ObjectId => id !== null && !inBatch.has(id));
    const targetPresent = await this.hasMany(targets);
    const missing = targets.filter((_, i) => !targetPresent[i]);
    if (missing.length > 0) {
      throw new FerryError('store/missing-object', `Cannot point a ref at ${missing[0]}: that object is not stored. Write the object in the same commit.`, { details: { missing } });
    }
    const at = Date.now();
    await this.backend.commit(fresh, refs.map((r) => ({ name: r.name, from: r.expect, to: r.next, reason: r.reason, at })));
  }
}

/** The error every backend throws when a compare-and-swap finds a different value. */
export function refConflict(name: string, expected: ObjectId | null, actual: ObjectId | null): FerryError {
  return new FerryError(
    'store/ref-conflict',
    `Ref ${name} moved meanwhile (expected ${expected ?? 'absent'}, found ${actual ?? 'absent'}); re-read it and retry.`,
    { details: { name, expected, actual } },
  );
}
