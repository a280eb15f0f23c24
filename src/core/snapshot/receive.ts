/**
 * Accepting objects from outside (a file, a peer, the relay): every incoming object is decoded as the kind its
 * referrer says and validated; every reference resolves to an incoming or already-stored object; nothing
 * unreachable is smuggled in. Only then does one atomic commit (which re-hashes every object against its id)
 * store the objects and move the refs.
 */
import { FerryError } from '../errors.ts';
import { type ObjectId, type RefUpdate, type Store, type StoredObject } from '../store/index.ts';
import { childrenOf, type ObjectKind } from '../session/index.ts';
import { refKind } from './closure.ts';

export async function receiveObjects(store: Store, objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<void> {
  const incoming = new Map(objects.map((o) => [o.id, o.bytes]));
  const visited = new Set<string>();
  const used = new Set<ObjectId>();
  let frontier: { id: ObjectId; kind: ObjectKind }[] = refs.filter((r) => r.next !== null).map((r) => ({ id: r.next!, kind: refKind(r.name) }));
  while (frontier.length > 0) {
    const fresh = frontier.filter((n) => !visited.has(`${n.kind}:${n.id}`));
    fresh.forEach((n) => visited.add(`${n.kind}:${n.id}`));
    const external = [...new Set(fresh.filter((n) => !incoming.has(n.id)).map((n) => n.id))];
    const present = await store.hasMany(external);
    const dangling = external.filter((_, i) => !present[i]);
    if (dangling.length > 0) {
      throw new FerryError('snapshot/dangling-id', `The snapshot refers to object ${dangling[0]}, which it neither contains nor finds in this store; it is incomplete.`, { details: { missing: dangling.slice(0, 10) } });
    }
    const next: { id: ObjectId; kind: ObjectKind }[] = [];
    for (const n of fresh) {
      const bytes = incoming.get(n.id);
      if (!bytes) continue; // Already stored, so its closure is too.
      used.add(n.id);
      next.push(...childrenOf(n.kind, bytes));
    }
    frontier = next;
  }
  if (used.size !== incoming.size) {
    throw new FerryError('snapshot/unreachable-object', `The snapshot carries ${incoming.size - used.size} object(s) that no ref reaches; refusing it as malformed.`);
  }
  await store.commit(objects, refs);
}
