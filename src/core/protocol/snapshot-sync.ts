/**
 * Publishing a session to the relay and fetching it back.
 *
 * Publish: the relay's copy is seen through the session key (sealed ids, sealed bytes). What the snapshot already
 * holds is what its manifest's refs reach — read from the relay, or remembered from the last publish or fetch
 * (`base`), which saves that round trip. Only the objects beyond it are sealed and sent, in one request that also
 * carries the new manifest and moves the snapshot: one atomic commit on the relay, so a reader never sees a
 * manifest whose objects are not all there. (Pages that do not fit in that request, and KV pages, go ahead in
 * batches of their own, invisible until it lands.)
 *
 * Fetch: the record, the manifest, the session's structure and pages in one request, then whatever the store still
 * lacks (KV entries, pages beyond what one answer holds) in one more (snapshot/sync.ts pullSession); every object
 * is authenticated against its id as it is opened, and the local commit validates the whole closure like an
 * imported file. A fetcher that names its engine gets only the KV entry it can load (kv.ts); the others are caches
 * it would carry for nothing.
 */
import { FerryError, isFerryError } from '../errors.ts';
import type { ObjectId, Ref, Store, StoredObject } from '../store/index.ts';
import { sessionPrefix } from '../session/index.ts';
import {
  assertMayLeave,
  collectClosureWithKinds,
  type ClosureObject,
  deriveSessionKeys,
  generateSessionKey,
  detachablesFor,
  openObject,
  pullSession,
  reachableIds,
  remoteId,
  sealObject,
  type SessionKeys,
  type SyncSource,
  type SyncStats,
} from '../snapshot/index.ts';
import type { RelayHttp } from './http-client.ts';
import { relayBuilds } from './relay-build-list.ts';
import { decodeManifest, encodeManifest, makeManifest, manifestRefs, type SnapshotManifest } from './manifest.ts';
import type { SnapshotRecord } from './wire.ts';

/** Pages that do not fit in the publishing request go ahead in framed batches of about this size, two in flight. */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_OBJECTS = 512;
const CONCURRENCY = 2;
/**
 * An update larger than this first asks which of its objects the relay already holds (say, a retry after a failed
 * publish); below it, the question's round trip costs more than sending them again. A new snapshot never asks:
 * under a fresh key no object can be there.
 */
const ASK_ABOVE_BYTES = 1 << 20;
const ID_BYTES = 32;

/** What the publisher keeps to update its snapshot later. The key and token are secrets: keep them on the device. */
export interface PublishedSnapshot {
  snapshot: SnapshotRecord;
  writeToken: string;
  key: Uint8Array;
}

/** What a snapshot held after a publish or fetch: pass it back as `base` and the next publish need not read it. */
export interface SnapshotBase {
  snapshot: SnapshotRecord;
  /** The manifest's refs, as local ids. */
  refs: readonly Ref[];
  /**
   * Every object the snapshot holds that its refs reach, where a publish from here has learnt it (what it walked
   * plus what it sent): the next publish then walks only what is new, not the whole session again.
   */
  reachable?: ReadonlySet<ObjectId>;
}

export interface PublishResult extends PublishedSnapshot {
  /** Objects and bytes of the session that were uploaded (sealed), plus the negotiation. */
  sync: SyncStats;
  /** True when the relay already held exactly this state and nothing moved. */
  unchanged: boolean;
  base: SnapshotBase;
}

export interface PublishOptions {
  /** The session's title, carried in the manifest (sealed) so a share opens under it. */
  title?: string;
  /**
   * Leave out the component builds the relay ships (it lists them, GET /api/v2/components, asked once per relay:
   * relay-build-list.ts): for a snapshot its workers run, which have those builds, as does any host that asks the
   * relay for them. Not for a share link: a device opening it does not ask the relay for builds.
   */
  omitRelayBuilds?: boolean;
}

/** An earlier publish (or fetch) of the same session, to update its snapshot. */
export interface PublishPrevious {
  snapshotId: string;
  writeToken: string;
  key: Uint8Array;
  /** Where the snapshot was last seen; when it has moved since, the publish reads it and goes on from there. */
  base?: SnapshotBase;
}

export interface FetchOptions {
  /**
   * The engine this store's sessions run on: only its KV entry, at the tips of the refs, is fetched. null: no KV
   * at all; absent: every KV entry (a whole copy, e.g. to export).
   */
  engine?: string | null;
  /** The component builds the fetcher already has (ships): their bytes are not fetched. Absent: every build comes. */
  hasBuild?: (componentId: string) => boolean;
  /** The snapshot version the store already holds (its structure is not sent again); default 0, none. */
  since?: number;
}

export interface FetchResult {
  sessionId: string;
  snapshot: SnapshotRecord;
  manifest: SnapshotManifest;
  sync: SyncStats;
  base: SnapshotBase;
}

/** Runs `fn` over `items`, at most `limit` at a time, keeping order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}


/**
 * Opens the objects the relay sent along (sealed, by remote id) all at once, so the walk over them needs no crypto
 * per level: authenticated plaintext by local id. One that does not open is left out — if the session needs it,
 * it is asked for by id like any other and fails there with its reason.
 */
async function openPrefetched(keys: SessionKeys, sealed: ReadonlyMap<ObjectId, Uint8Array>): Promise<Map<ObjectId, Uint8Array>> {
  const opened = await Promise.all([...sealed].map(([remote, bytes]) => openObject(keys, remote, bytes).catch(() => undefined)));
  return new Map(opened.filter((o): o is StoredObject => o !== undefined).map((o) => [o.id, o.bytes]));
}

/** The relay's objects seen through the session key: local ids in, authenticated plaintext out; `opened` (already opened, by local id) first. */
function relayReader(relay: RelayHttp, keys: SessionKeys, refs: readonly Ref[], opened: ReadonlyMap<ObjectId, Uint8Array> = new Map()): SyncSource {
  return {
    async listRefs(prefix) {
      return refs.filter((r) => r.name.startsWith(prefix));
    },
    async hasMany(ids) {
      const remote = await Promise.all(ids.map((id) => remoteId(keys, id)));
      const missing = new Set(await relay.missing(remote));
      return remote.map((id) => !missing.has(id));
    },
    async getMany(ids) {
      const absent = ids.filter((id) => !opened.has(id));
      const remote = await Promise.all(absent.map((id) => remoteId(keys, id)));
      const fetched = remote.length > 0 ? await relay.getObjects(remote) : new Map<ObjectId, Uint8Array>();
      const more = new Map(await Promise.all(absent.map(async (id, i) => {
        const sealed = fetched.get(remote[i]!);
        return [id, sealed ? (await openObject(keys, remote[i]!, sealed)).bytes : undefined] as const;
      })));
      return ids.map((id) => opened.get(id) ?? more.get(id));
    },
  };
}

/** The snapshot as the relay holds it now: its record and its manifest's refs (checked to be session `sessionId`'s). */
async function readBase(relay: RelayHttp, keys: SessionKeys, snapshotId: string, sessionId: string): Promise<SnapshotBase> {
  const contents = await relay.snapshotContents(snapshotId);
  const manifest = await openManifest(keys, snapshotId, contents);
  if (manifest.session !== sessionId) {
    throw new FerryError('protocol/wrong-session', `Snapshot ${snapshotId} holds session ${manifest.session}, not ${sessionId}; publish a new snapshot instead.`);
  }
  return { snapshot: contents.snapshot, refs: manifestRefs(manifest) };
}

async function openManifest(keys: SessionKeys, snapshotId: string, contents: { snapshot: SnapshotRecord; manifest: Uint8Array }): Promise<SnapshotManifest> {
  if (contents.snapshot.id !== snapshotId) throw new FerryError('relay/bad-response', `Asked for snapshot ${snapshotId}, the relay answered with ${contents.snapshot.id}.`);
  return decodeManifest((await openObject(keys, contents.snapshot.manifest, contents.manifest)).bytes);
}

/**
 * Publishes session `sessionId` from `store`. With `previous` (from an earlier publish or fetch of the same
 * session) it updates that snapshot, uploading only what changed; otherwise it creates a new snapshot under a fresh
 * key. A session marked private in `store` is refused (session/private): it never leaves the device.
 */
export async function publishSession(store: Store, sessionId: string, relay: RelayHttp, previous?: PublishPrevious, { title, omitRelayBuilds }: PublishOptions = {}): Promise<PublishResult> {
  await assertMayLeave(store, sessionId, 'publish');
  const key = previous?.key ?? generateSessionKey();
  // Derived while the session's closure is collected.
  const keys = deriveSessionKeys(key);
  // Asked for only when something is to go up, and once per relay (relay-build-list.ts).
  const secret = { keys, key, title, relayBuilds: omitRelayBuilds ? () => relayBuilds(relay) : undefined };
  if (previous?.base) {
    try {
      return await publishOnto(store, sessionId, relay, secret, previous, previous.base);
    } catch (err) {
      // Someone moved the snapshot since it was last seen: read where it is now and publish onto that.
      if (!isFerryError(err, 'store/ref-conflict')) throw err;
    }
  }
  const base = previous ? await readBase(relay, await keys, previous.snapshotId, sessionId) : undefined;
  return publishOnto(store, sessionId, relay, secret, previous, base);
}

interface PublishSecret {
  keys: Promise<SessionKeys>;
  key: Uint8Array;
  title: string | undefined;
  /** The builds the relay ships, when those are left out. */
  relayBuilds: (() => Promise<ReadonlySet<string>>) | undefined;
}

async function publishOnto(store: Store, sessionId: string, relay: RelayHttp, secret: PublishSecret, previous: PublishPrevious | undefined, base: SnapshotBase | undefined): Promise<PublishResult> {
  const { key } = secret;
  const after = await store.listRefs(sessionPrefix(sessionId));
  if (after.length === 0) throw new FerryError('session/not-found', `Session ${sessionId} is not in the sending store; nothing to sync.`);
  const before = base?.refs ?? [];
  if (base && previous && sameRefs(before, after)) {
    return { snapshot: base.snapshot, writeToken: previous.writeToken, key, sync: { objects: 0, objectBytes: 0, negotiationBytes: 0, totalBytes: 0 }, unchanged: true, base };
  }
  const asking = secret.relayBuilds?.();
  // What the snapshot already holds: everything its refs reach, computed here, where those objects are too (once:
  // each publish adds what it sent). The relay never drops a snapshot's objects, so that stays true.
  const known = base?.reachable ?? (await reachableIdsHere(store, before));
  const relayBuilds = await asking;
  // Every KV entry goes (the fetcher picks); a build the relay ships stays here: its workers have it, and a host
  // that lacks it gets it from the relay's library (host/relay-builds.ts).
  const candidates = await collectClosureWithKinds(store, after, { known, ...(relayBuilds ? { kv: detachablesFor(undefined, (id) => relayBuilds.has(id)) } : {}) });
  const keys = await secret.keys;
  const remote = await Promise.all(candidates.map((o) => remoteId(keys, o.id)));
  let send = candidates.map((object, i) => ({ object, remote: remote[i]! }));
  let negotiationBytes = 0;
  if (base && candidates.reduce((n, o) => n + o.bytes.length, 0) > ASK_ABOVE_BYTES) {
    const missing = new Set(await relay.missing(remote));
    send = send.filter((s) => missing.has(s.remote));
    negotiationBytes += remote.length * ID_BYTES + Math.ceil(remote.length / 8);
  }
  // Structure first, then the pages: the relay hands both to readers with the record (wire.ts snapshotPaths).
  // Detachable pages (KV, a cache most readers leave out; carried builds, which a host that ships them leaves out)
  // never ride in the publishing request, so the relay never hands them out.
  const rank = (o: ClosureObject): number => (o.kind !== 'page' ? 0 : o.inKv ? 2 : 1);
  send.sort((a, b) => rank(a.object) - rank(b.object));
  const [sealed, manifest] = await Promise.all([
    Promise.all(send.map((s) => sealObject(keys, s.object, s.remote))),
    encodeManifest(makeManifest(sessionId, after, Date.now(), secret.title)).then((m) => sealObject(keys, m)),
  ]);
  const { final, ahead } = splitFinal(sealed, send.filter((s) => rank(s.object) < 2).length, manifest);
  await mapLimit(batches(ahead), CONCURRENCY, (batch) => relay.putObjects(batch));
  const structure = send.slice(0, final.length - 1).filter((s) => s.object.kind !== 'page').length;
  const objectBytes = sealed.reduce((n, o) => n + o.bytes.length, manifest.bytes.length);
  const sync: SyncStats = { objects: sealed.length, objectBytes, negotiationBytes, totalBytes: objectBytes + negotiationBytes };
  const reachable = new Set(known);
  for (const o of candidates) reachable.add(o.id);
  if (base && previous) {
    const snapshot = await relay.publishToSnapshot(previous.snapshotId, previous.writeToken, final, manifest.id, base.snapshot.manifest, structure);
    return { snapshot, writeToken: previous.writeToken, key, sync, unchanged: false, base: { snapshot, refs: after, reachable } };
  }
  const created = await relay.publishSnapshot(final, manifest.id, structure);
  return { snapshot: created.snapshot, writeToken: created.writeToken, key, sync, unchanged: false, base: { snapshot: created.snapshot, refs: after, reachable } };
}

/** Everything `refs` reach among the objects `store` holds. */
async function reachableIdsHere(store: Store, refs: readonly Ref[]): Promise<Set<ObjectId>> {
  const here = await store.hasMany(refs.map((r) => r.id));
  return reachableIds(store, refs.filter((_, i) => here[i]));
}

/**
 * Fetches snapshot `snapshotId` with its session key and imports the session (every branch, the head) into
 * `store`, sending for nothing the store already has. The key may still be on its way (a worker opening the one
 * sealed to it): the first request goes out meanwhile, and nothing it brings is used before the key opens it.
 */
export async function fetchSnapshot(relay: RelayHttp, snapshotId: string, key: Uint8Array | Promise<Uint8Array>, store: Store, opts: FetchOptions = {}): Promise<FetchResult> {
  // The keys are derived while the request is out.
  const [keys, contents] = await Promise.all([Promise.resolve(key).then(deriveSessionKeys), relay.snapshotContents(snapshotId, opts.since ?? 0)]);
  const [manifest, opened] = await Promise.all([openManifest(keys, snapshotId, contents), openPrefetched(keys, contents.objects)]);
  const refs = manifestRefs(manifest);
  const sync = await pullSession(relayReader(relay, keys, refs, opened), store, manifest.session, { kv: detachablesFor(opts.engine, opts.hasBuild) });
  return { sessionId: manifest.session, snapshot: contents.snapshot, manifest, sync, base: { snapshot: contents.snapshot, refs } };
}

/**
 * The publishing request's objects — the leading ones among the first `eligible`, then the manifest, within one
 * batch — and the rest, which go ahead. Objects keep their order, so the structure (first) rides with the manifest.
 */
function splitFinal(objects: readonly StoredObject[], eligible: number, manifest: StoredObject): { final: StoredObject[]; ahead: StoredObject[] } {
  let bytes = manifest.bytes.length;
  let n = 0;
  while (n < eligible && n + 1 < BATCH_OBJECTS && bytes + objects[n]!.bytes.length <= BATCH_BYTES) bytes += objects[n++]!.bytes.length;
  return { final: [...objects.slice(0, n), manifest], ahead: objects.slice(n) };
}

/** Groups objects into upload batches that stay within the relay's limits. */
function batches(objects: readonly StoredObject[]): StoredObject[][] {
  const out: StoredObject[][] = [];
  let current: StoredObject[] = [];
  let bytes = 0;
  for (const o of objects) {
    if (current.length > 0 && (bytes + o.bytes.length > BATCH_BYTES || current.length >= BATCH_OBJECTS)) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(o);
    bytes += o.bytes.length;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function sameRefs(a: readonly Ref[], b: readonly Ref[]): boolean {
  const m = new Map<ObjectId, ObjectId>(a.map((r) => [r.name, r.id]));
  return a.length === b.length && b.every((r) => m.get(r.name) === r.id);
}
