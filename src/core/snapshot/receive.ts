/**
 * Accepting objects from outside (a file, a peer, the relay): every incoming object is decoded as the kind its
 * referrer says and validated; every reference resolves to an incoming or already-stored object — except a KV
 * entry, which may be left behind whole (kv.ts); nothing unreachable is smuggled in. Only then does one atomic
 * commit (which re-hashes every object against its id) store the objects and move the refs.
 */
import { FerryError } from '../errors.ts';
import { type ObjectId, type RefUpdate, type Store, type StoredObject } from '../store/index.ts';
import type { ObjectKind } from '../session/index.ts';
import { refKind } from './closure.ts';
import { edgesOf } from './kv.ts';

interface Node {
  id: ObjectId;
  kind: ObjectKind;
  detachable: boolean;
}

export async function receiveObjects(store: Store, objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<void> {
  const incoming = new Map(objects.map((o) => [o.id, o.bytes]));
  const visited = new Set<string>();
  const used = new Set<ObjectId>();
  let frontier: Node[] = refs.filter((r) => r.next !== null).map((r) => ({ id: r.next!, kind: refKind(r.name), detachable: false }));
  while (frontier.length > 0) {
    // Keyed by how it is reached too: an object a KV entry and a component share must be here for the component.
    const key = (n: Node): string => `${n.kind}:${n.id}:${n.detachable ? 'kv' : ''}`;
    const fresh = frontier.filter((n) => !visited.has(key(n)));
    fresh.forEach((n) => visited.add(key(n)));
    // A KV entry neither sent nor stored is simply not here; anything else must be.
    const required = [...new Set(fresh.filter((n) => !incoming.has(n.id) && !n.detachable).map((n) => n.id))];
    const present = await store.hasMany(required);
    const dangling = required.filter((_, i) => !present[i]);
    if (dangling.length > 0) {
      throw new FerryError('snapshot/dangling-id', `The snapshot refers to object ${dangling[0]}, which it neither contains nor finds in this store; it is incomplete.`, { details: { missing: dangling.slice(0, 10) } });
    }
    const next: Node[] = [];
    for (const n of fresh) {
      const bytes = incoming.get(n.id);
      if (!bytes) continue; // Already stored, so its closure is too (or a KV entry left behind).
      used.add(n.id);
      for (const e of edgesOf(n.kind, bytes)) next.push({ id: e.id, kind: e.kind, detachable: e.kv !== undefined });
    }
    frontier = next;
  }
  if (used.size !== incoming.size) {
    throw new FerryError('snapshot/unreachable-object', `The snapshot carries ${incoming.size - used.size} object(s) that no ref reaches; refusing it as malformed.`);
  }
  await store.commit(objects, refs);
}
