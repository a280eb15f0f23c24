/**
 * Have/want sync of one session between any two places: the receiver says which refs it has, the sender walks
 * its graph down to what those refs already cover, the receiver confirms which of the remaining ids it lacks, and
 * only those objects travel — then the refs move, atomically, on the receiving side.
 *
 * Pulling into a local store (pullSession) turns it around, because there the receiver is the cheap side to ask:
 * the walk asks the store what it has at every level and only fetches what it lacks — the session's structure level
 * by level, then every missing page in one request, whatever the session's depth.
 */
import { FerryError } from '../errors.ts';
import type { ObjectId, Ref, RefUpdate, Store, StoredObject } from '../store/index.ts';
import { sessionPrefix } from '../session/index.ts';
import { collectClosure, danglingId, freshNodes, nextNodes, reachableIds, walkStart, type ObjectReader, type WalkNode } from './closure.ts';
import { everyKv, type KvSelection } from './kv.ts';
import { receiveObjects } from './receive.ts';

export interface SyncSource extends ObjectReader {
  listRefs(prefix: string): Promise<Ref[]>;
  hasMany(ids: readonly ObjectId[]): Promise<boolean[]>;
}

export interface SyncTarget {
  listRefs(prefix: string): Promise<Ref[]>;
  hasMany(ids: readonly ObjectId[]): Promise<boolean[]>;
  /** Validates and stores `objects` and moves `refs` atomically; returns the bytes that crossed the wire. */
  receive(objects: readonly StoredObject[], refs: readonly RefUpdate[]): Promise<number>;
}

export interface SyncStats {
  /** Objects sent. */
  objects: number;
  /** Bytes of those objects as sent (sealed size for the relay). */
  objectBytes: number;
  /** Bytes of the exchange itself: advertised refs, offered ids, the want bitmap, ref updates. */
  negotiationBytes: number;
  totalBytes: number;
}

const ID_BYTES = 32;
const utf8Length = (s: string): number => new TextEncoder().encode(s).length;

/** A local store as a sync target: everything it receives passes the same validation as an imported file. */
export function storeTarget(store: Store): SyncTarget {
  return {
    listRefs: (prefix) => store.listRefs(prefix),
    hasMany: (ids) => store.hasMany(ids),
    async receive(objects, refs) {
      await receiveObjects(store, objects, refs);
      return objects.reduce((n, o) => n + o.bytes.length, 0);
    },
  };
}

/** Makes `target` hold session `sessionId` exactly as `source` does (every branch and the head), sending only what it lacks. */
export async function syncSession(source: SyncSource, target: SyncTarget, sessionId: string): Promise<SyncStats> {
  const prefix = sessionPrefix(sessionId);
  const [srcRefs, dstRefs] = await Promise.all([source.listRefs(prefix), target.listRefs(prefix)]);
  if (srcRefs.length === 0) throw new FerryError('session/not-found', `Session ${sessionId} is not in the sending store; nothing to sync.`);
  // What the receiver's refs already cover, computed on the sender's side where the sender has those objects too.
  const dstIds = dstRefs.map((r) => r.id);
  const shared = await source.hasMany(dstIds);
  const known = await reachableIds(source, dstRefs.filter((_, i) => shared[i]));
  const candidates = await collectClosure(source, srcRefs, known);
  const present = await target.hasMany(candidates.map((o) => o.id));
  const send = candidates.filter((_, i) => !present[i]);
  const dst = new Map(dstRefs.map((r) => [r.name, r.id]));
  const updates: RefUpdate[] = srcRefs
    .filter((r) => dst.get(r.name) !== r.id)
    .map((r) => ({ name: r.name, expect: dst.get(r.name) ?? null, next: r.id, reason: 'sync' }));
  const objectBytes = send.length > 0 || updates.length > 0 ? await target.receive(send, updates) : 0;
  const negotiationBytes =
    dstRefs.reduce((n, r) => n + utf8Length(r.name) + ID_BYTES, 0) +
    candidates.length * ID_BYTES +
    Math.ceil(candidates.length / 8) +
    updates.reduce((n, r) => n + utf8Length(r.name) + 2 * ID_BYTES, 0);
  return { objects: send.length, objectBytes, negotiationBytes, totalBytes: objectBytes + negotiationBytes };
}

export interface PullOptions {
  /** Which KV entries to bring (kv.ts); default every one. */
  kv?: KvSelection;
}

/**
 * Makes `store` hold session `sessionId` as `source` has it (every branch and the head), fetching only what the
 * store lacks: the structure (heads, checkpoints, chunk lists) one level per getMany, the pages all in one getMany
 * at the end. Everything received passes receiveObjects, like an imported file, and lands in one commit.
 */
export async function pullSession(source: SyncSource, store: Store, sessionId: string, opts: PullOptions = {}): Promise<SyncStats> {
  const prefix = sessionPrefix(sessionId);
  const [srcRefs, dstRefs] = await Promise.all([source.listRefs(prefix), store.listRefs(prefix)]);
  if (srcRefs.length === 0) throw new FerryError('session/not-found', `Session ${sessionId} is not in the sending store; nothing to sync.`);
  const kv = opts.kv ?? everyKv;
  const { frontier: start, tips } = walkStart(srcRefs);
  const seen = new Set<ObjectId>();
  const received: StoredObject[] = [];
  const pages: WalkNode[] = [];
  let asked = 0;
  /** Fetches the nodes the store lacks; returns those that arrived, with their bytes. */
  const fetchMissing = async (nodes: readonly WalkNode[]): Promise<{ node: WalkNode; bytes: Uint8Array }[]> => {
    const have = await store.hasMany(nodes.map((n) => n.id));
    const want = nodes.filter((_, i) => !have[i]);
    asked += want.length;
    const found = want.length > 0 ? await source.getMany(want.map((n) => n.id)) : [];
    const out: { node: WalkNode; bytes: Uint8Array }[] = [];
    want.forEach((node, i) => {
      const bytes = found[i];
      if (bytes) out.push({ node, bytes });
      else if (!node.detachable) throw danglingId(node);
    });
    received.push(...out.map((o) => ({ id: o.node.id, bytes: o.bytes })));
    return out;
  };
  for (let frontier = start; frontier.length > 0; ) {
    const next: WalkNode[] = [];
    for (const { node, bytes } of await fetchMissing(freshNodes(frontier, seen))) {
      for (const child of nextNodes(node, bytes, tips, kv)) (child.kind === 'page' ? pages : next).push(child);
    }
    frontier = next;
  }
  await fetchMissing(freshNodes(pages, seen));
  const dst = new Map(dstRefs.map((r) => [r.name, r.id]));
  const updates: RefUpdate[] = srcRefs
    .filter((r) => dst.get(r.name) !== r.id)
    .map((r) => ({ name: r.name, expect: dst.get(r.name) ?? null, next: r.id, reason: 'sync' }));
  if (received.length > 0 || updates.length > 0) await receiveObjects(store, received, updates);
  const objectBytes = received.reduce((n, o) => n + o.bytes.length, 0);
  const negotiationBytes = asked * ID_BYTES + updates.reduce((n, r) => n + utf8Length(r.name) + 2 * ID_BYTES, 0);
  return { objects: received.length, objectBytes, negotiationBytes, totalBytes: objectBytes + negotiationBytes };
}
