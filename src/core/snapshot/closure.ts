/**
 * Walking the session graph: which objects a set of refs reaches, children before parents — a deterministic order,
 * so the same session always exports to the same bundle payload.
 */
import { FerryError } from '../errors.ts';
import type { ObjectId, Ref, StoredObject } from '../store/index.ts';
import { childrenOf, parseSessionRef, type ObjectKind } from '../session/index.ts';

export interface ObjectReader {
  getMany(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]>;
}

/** The kind of object a session ref points at; other refs are not part of any session. */
export function refKind(name: string): ObjectKind {
  const parsed = parseSessionRef(name);
  if (!parsed) throw new FerryError('snapshot/bad-ref', `Ref ${JSON.stringify(name.slice(0, 80))} is not a session ref (sessions/<id>/head or sessions/<id>/branches/<name>).`);
  return parsed.kind === 'head' ? 'head' : 'checkpoint';
}

interface GraphNode {
  bytes: Uint8Array;
  children: readonly { id: ObjectId }[];
}

/**
 * Objects reachable from `refs`, children first, skipping every object in `known` (and, by the store invariant that
 * an object is only stored with its closure, everything below it). Throws 'snapshot/dangling-id' on a missing one.
 */
export async function collectClosure(reader: ObjectReader, refs: readonly Ref[], known: ReadonlySet<ObjectId> = new Set()): Promise<StoredObject[]> {
  const nodes = new Map<ObjectId, GraphNode>();
  let frontier = refs.map((r) => ({ id: r.id, kind: refKind(r.name) })).filter((n) => !known.has(n.id));
  while (frontier.length > 0) {
    const fresh = [...new Map(frontier.filter((n) => !nodes.has(n.id)).map((n) => [n.id, n])).values()];
    const found = await reader.getMany(fresh.map((n) => n.id));
    const next: { id: ObjectId; kind: ObjectKind }[] = [];
    fresh.forEach((n, i) => {
      const bytes = found[i];
      if (!bytes) throw new FerryError('snapshot/dangling-id', `Object ${n.id} (a ${n.kind}) is referenced but missing; the session is incomplete.`, { details: { id: n.id } });
      const children = childrenOf(n.kind, bytes);
      nodes.set(n.id, { bytes, children });
      for (const c of children) if (!known.has(c.id) && !nodes.has(c.id)) next.push(c);
    });
    frontier = next;
  }
  return postOrder(nodes, refs.map((r) => r.id));
}

/** Every id reachable from `refs` (used to compute what a receiver already has). */
export async function reachableIds(reader: ObjectReader, refs: readonly Ref[]): Promise<Set<ObjectId>> {
  return new Set((await collectClosure(reader, refs)).map((o) => o.id));
}

/** The nodes reachable from `roots` through `nodes`, each after all of its children. */
function postOrder(nodes: ReadonlyMap<ObjectId, GraphNode>, roots: readonly ObjectId[]): StoredObject[] {
  const out: StoredObject[] = [];
  const done = new Set<ObjectId>();
  for (const root of roots) {
    const stack: { id: ObjectId; expanded: boolean }[] = [{ id: root, expanded: false }];
    while (stack.length > 0) {
      const top = stack.pop()!;
      const node = nodes.get(top.id);
      if (!node || done.has(top.id)) continue;
      if (top.expanded) {
        done.add(top.id);
        out.push({ id: top.id, bytes: node.bytes });
      } else {
        stack.push({ id: top.id, expanded: true });
        for (const c of node.children) if (!done.has(c.id)) stack.push({ id: c.id, expanded: false });
      }
    }
  }
  return out;
}
