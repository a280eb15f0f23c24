/**
 * The relay's copy of a session: every object sealed with the session key (AES-256-GCM, fresh random IV, bound to
 * its remote id) and stored under its remote id, HMAC(local id). The relay stores and deduplicates opaque blobs;
 * it never sees plaintext or content hashes. The relay side is a bare StoreBackend: it cannot hash what it cannot read.
 */
import { FerryError } from '../errors.ts';
import { fromHex, objectId, type ObjectId, type Ref, type StoreBackend, type StoredObject } from '../store/index.ts';
import { decodeContainer, encodeContainer } from './container.ts';
import { remoteId, type SessionKeys } from './keys.ts';
import type { SyncSource, SyncTarget } from './sync.ts';

/** Largest single sealed object accepted from the relay: a page or a checkpoint, never a whole session. */
const OBJECT_LIMITS = { maxPayload: 64 << 20 };

/** Seals `object` under its remote id (`remote` when the caller has already computed it). */
export async function sealObject(keys: SessionKeys, object: StoredObject, remote?: ObjectId): Promise<StoredObject> {
  const id = remote ?? (await remoteId(keys, object.id));
  return { id, bytes: await encodeContainer(object.bytes, { kind: 'object', keys, aad: fromHex(id) }) };
}

/** Opens a sealed object and checks it is the one its remote id names; returns it under its local id. */
export async function openObject(keys: SessionKeys, remote: ObjectId, sealed: Uint8Array): Promise<StoredObject> {
  const bytes = await decodeContainer(sealed, { kind: 'object', keys, aad: fromHex(remote), limits: OBJECT_LIMITS });
  const id = await objectId(bytes);
  if ((await remoteId(keys, id)) !== remote) {
    throw new FerryError('snapshot/auth-failed', `Relay object ${remote} decrypts to content that belongs to another id; it was swapped.`);
  }
  return { id, bytes };
}

/** The relay seen through the session key, with local ids: usable as either end of `syncSession`. */
export function sealedRelay(relay: StoreBackend, keys: SessionKeys): SyncSource & SyncTarget {
  const remoteIds = (ids: readonly ObjectId[]) => Promise.all(ids.map((id) => remoteId(keys, id)));

  async function getMany(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    const remote = await remoteIds(ids);
    const sealed = await relay.getObjects(remote);
    return Promise.all(sealed.map(async (bytes, i) => (bytes ? (await openObject(keys, remote[i]!, bytes)).bytes : undefined)));
  }

  async function listRefs(prefix: string): Promise<Ref[]> {
    const refs = await relay.listRefs(prefix);
    const sealed = await relay.getObjects(refs.map((r) => r.id));
    return Promise.all(
      refs.map(async (r, i) => {
        const bytes = sealed[i];
        if (!bytes) throw new FerryError('store/missing-object', `Relay ref ${r.name} points at a missing object; the relay's store is damaged.`);
        return { name: r.name, id: (await openObject(keys, r.id, bytes)).id };
      }),
    );
  }

  return {
    getMany,
    listRefs,
    async hasMany(ids) {
      return ids.length === 0 ? [] : relay.hasObjects(await remoteIds(ids));
    },
    async receive(objects, refs) {
      const sealed = await Promise.all(objects.map((o) => sealObject(keys, o)));
      const at = Date.now();
      const moves = await Promise.all(
        refs.map(async (r) => ({
          name: r.name,
          from: r.expect === null ? null : await remoteId(keys, r.expect),
          to: r.next === null ? null : await remoteId(keys, r.next),
          reason: r.reason,
          at,
        })),
      );
      await relay.commit(sealed, moves);
      return sealed.reduce((n, o) => n + o.bytes.length, 0);
    },
  };
}
