/**
 * Walking the session graph: which objects a set of refs reaches, children before parents — a deterministic order,
 * so the same session always exports to the same bundle payload. KV entries are detachable (kv.ts): one that is
 * absent is skipped, one that is present must be whole.
 */
import { FerryError } from '../errors.ts';
import type { ObjectId, Ref, StoredObject } from '../store/index.ts';
import { parseSessionRef, type ObjectKind } from '../session/index.ts';
import { edgesOf, everyKv, type KvSelection } from './kv.ts';

export interface ObjectReader {
  getMany(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]>;
}

/** The kind of object a session ref points at; other refs are not part of any session. */
export function refKind(name: string): ObjectKind {
  const parsed = parseSessionRef(name);
  if (!parsed) throw new FerryError('snapshot/bad-ref', `Ref ${JSON.stringify(name.slice(0, 80))} is not a session ref (sessions/<id>/head or sessions/<id>/branches/<name>).`);
  return parsed.kind === 'head' ? 'head' : 'checkpoint';
}

/** An object of the closure with the kind its referrer gave it; `inKv` when it is only reached through KV entries. */
export interface ClosureObject extends StoredObject {
  kind: ObjectKind;
  inKv: boolean;
}

/**
 * A node still to visit: `detachable` when every path to it so far enters a KV entry there, `inKv` when every path
 * to it so far passes through one.
 */
export interface WalkNode {
  id: ObjectId;
  kind: ObjectKind;
  detachable: boolean;
  inKv: boolean;
}

interface GraphNode {
  kind: ObjectKind;
  inKv: boolean;
  bytes: Uint8Array;
  children: readonly { id: ObjectId }[];
}

export interface ClosureOptions {
  /** Objects the caller has (with, by the store invariant, everything below them): not walked, not returned. */
  known?: ReadonlySet<ObjectId>;
  /** Which KV entries to follow; default every one. */
  kv?: KvSelection;
}

/** The starting nodes of a walk from `refs`, and the checkpoints that are tips (a ref points right at them). */
export function walkStart(refs: readonly Ref[]): { frontier: WalkNode[]; tips: Set<ObjectId> } {
  const frontier = refs.map((r) => ({ id: r.id, kind: refKind(r.name), detachable: false, inKv: false }));
  return { frontier, tips: new Set(frontier.filter((n) => n.kind === 'checkpoint').map((n) => n.id)) };
}

/**
 * The nodes of `frontier` not seen yet, once each; a node reached both through a KV entry and otherwise is neither
 * detachable nor in KV. Marks them seen.
 */
export function freshNodes(frontier: readonly WalkNode[], seen: Set<ObjectId>): WalkNode[] {
  const fresh = new Map<ObjectId, WalkNode>();
  for (const n of frontier) {
    if (seen.has(n.id)) continue;
    const other = fresh.get(n.id);
    fresh.set(n.id, other ? { ...n, detachable: other.detachable && n.detachable, inKv: other.inKv && n.inKv } : n);
  }
  for (const id of fresh.keys()) seen.add(id);
  return [...fresh.values()];
}

/** The children of a node to visit next, with the KV entries `kv` does not want left out. */
export function nextNodes(node: WalkNode, bytes: Uint8Array, tips: ReadonlySet<ObjectId>, kv: KvSelection): WalkNode[] {
  const out: WalkNode[] = [];
  for (const e of edgesOf(node.kind, bytes)) {
    if (e.kv !== undefined && !kv(e.kv, tips.has(node.id))) continue;
    out.push({ id: e.id, kind: e.kind, detachable: e.kv !== undefined, inKv: node.inKv || e.kv !== undefined });
  }
  return out;
}

export const danglingId = (n: { id: ObjectId; kind: ObjectKind }): FerryError =>
  new FerryError('snapshot/dangling-id', `Object ${n.id} (a ${n.kind}) is referenced but missing; the session is incomplete.`, { details: { id: n.id } });

/**
 * Objects reachable from `refs`, children first, with their kinds, skipping `known` (and everything below it) and
 * KV entries that are absent or not wanted. Throws 'snapshot/dangling-id' on any other missing object.
 */
export async function collectClosureWithKinds(reader: ObjectReader, refs: readonly Ref[], opts: ClosureOptions = {}): Promise<ClosureObject[]> {
  const known = opts.known ?? new Set<ObjectId>();
  const kv = opts.kv ?? everyKv;
  const nodes = new Map<ObjectId, GraphNode>();
  const seen = new Set<ObjectId>(known);
  const absent = new Set<ObjectId>();
  const start = walkStart(refs);
  let frontier = start.frontier;
  while (frontier.length > 0) {
    const fresh = freshNodes(frontier, seen);
    const found = await reader.getMany(fresh.map((n) => n.id));
    const next: WalkNode[] = [];
    fresh.forEach((n, i) => {
      const bytes = found[i];
      if (!bytes) {
        if (!n.detachable) throw danglingId(n);
        absent.add(n.id);
        return;
      }
      const children = nextNodes(n, bytes, start.tips, kv);
      // An object first met as an absent KV entry may also be needed by something else: then it is dangling.
      const needed = children.find((c) => !c.detachable && absent.has(c.id));
      if (needed) throw danglingId(needed);
      nodes.set(n.id, { kind: n.kind, inKv: n.inKv, bytes, children });
      next.push(...children);
    });
    frontier = next;
  }
  return postOrder(nodes, refs.map((r) => r.id));
}

/**
 * Objects reachable from `refs`, children first, skipping every object in `known` (and, by the store invariant that
 * an object is only stored with its closure, everything below it). Throws 'snapshot/dangling-id' on a missing one.
 */
export async function collectClosure(reader: ObjectReader, refs: readonly Ref[], known: ReadonlySet<ObjectId> = new Set()): Promise<StoredObject[]> {
  return (await collectClosureWithKinds(reader, refs, { known })).map((o) => ({ id: o.id, bytes: o.bytes }));
}

/** Every id reachable from `refs` (used to compute what a receiver already has). */
export async function reachableIds(reader: ObjectReader, refs: readonly Ref[]): Promise<Set<ObjectId>> {
  return new Set((await collectClosureWithKinds(reader, refs)).map((o) => o.id));
}

/** The nodes reachable from `roots` through `nodes`, each after all of its children. */
function postOrder(nodes: ReadonlyMap<ObjectId, GraphNode>, roots: readonly ObjectId[]): ClosureObject[] {
  const out: ClosureObject[] = [];
  const done = new Set<ObjectId>();
  for (const root of roots) {
    const stack: { id: ObjectId; expanded: boolean }[] = [{ id: root, expanded: false }];
    while (stack.length > 0) {
      const top = stack.pop()!;
      const node = nodes.get(top.id);
      if (!node || done.has(top.id)) continue;
      if (top.expanded) {
        done.add(top.id);
        out.push({ id: top.id, kind: node.kind, inKv: node.inKv, bytes: node.bytes });
      } else {
        stack.push({ id: top.id, expanded: true });
        for (const c of node.children) if (!done.has(c.id)) stack.push({ id: c.id, expanded: false });
      }
    }
  }
  return out;
}
