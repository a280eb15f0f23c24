/**
 * Publishing a session to the relay and fetching it back, on top of the have/want sync (snapshot/sync.ts).
 *
 * Publish: the relay's copy is seen through the session key (sealed ids, sealed bytes); the relay's current refs
 * come from the snapshot's sealed manifest, so a second publish walks only what changed since, asks the relay which
 * of those it lacks, uploads only those, then uploads a new manifest and moves the snapshot to it — last, so a
 * reader never sees a manifest whose objects are not all there.
 *
 * Fetch: the reverse, into any local Store; every object is authenticated against its id as it is opened, and the
 * local commit validates the whole closure like an imported file.
 */
import { FerryError } from '../errors.ts';
import type { ObjectId, Ref, RefUpdate, Store, StoredObject } from '../store/index.ts';
import { deriveSessionKeys, generateSessionKey, openObject, remoteId, sealObject, storeTarget, syncSession, type SessionKeys, type SyncSource, type SyncStats, type SyncTarget } from '../snapshot/index.ts';
import type { RelayHttp } from './http-client.ts';
import { decodeManifest, encodeManifest, makeManifest, manifestRefs, type SnapshotManifest } from './manifest.ts';
import type { SnapshotRecord } from './wire.ts';

/** Objects are sealed concurrently and uploaded in framed batches of about this many bytes, two batches in flight. */
const BATCH_BYTES = 4 * 1024 * 1024;
const BATCH_OBJECTS = 512;
const CONCURRENCY = 2;

/** What the publisher keeps to update its snapshot later. The key and token are secrets: keep them on the device. */
export interface PublishedSnapshot {
  snapshot: SnapshotRecord;
  writeToken: string;
  key: Uint8Array;
}

export interface PublishResult extends PublishedSnapshot {
  /** Objects and bytes of the session that were uploaded (sealed), plus the negotiation. */
  sync: SyncStats;
  /** True when the relay already held exactly this state and nothing moved. */
  unchanged: boolean;
}

export interface FetchResult {
  sessionId: string;
  snapshot: SnapshotRecord;
  manifest: SnapshotManifest;
  sync: SyncStats;
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

async function readManifest(relay: RelayHttp, keys: SessionKeys, record: SnapshotRecord): Promise<SnapshotManifest> {
  const sealed = await relay.getObject(record.manifest);
  if (!sealed) throw new FerryError('relay/unknown-object', `Snapshot ${record.id} points at a manifest the relay no longer holds; the relay's store is damaged.`);
  return decodeManifest((await openObject(keys, record.manifest, sealed)).bytes);
}

/** The relay's objects seen through the session key: local ids in, authenticated plaintext out. */
function relayReader(relay: RelayHttp, keys: SessionKeys, refs: readonly Ref[]): SyncSource {
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
      const remote = await Promise.all(ids.map((id) => remoteId(keys, id)));
      const found = await relay.getObjects(remote);
      return Promise.all(remote.map(async (r) => {
        const sealed = found.get(r);
        return sealed ? (await openObject(keys, r, sealed)).bytes : undefined;
      }));
    },
  };
}

/** The relay as a sync target: seals and uploads what it lacks, and remembers the refs that should move. */
function relayWriter(relay: RelayHttp, keys: SessionKeys, current: readonly Ref[]): SyncTarget & { refs(): Ref[] } {
  const refs = new Map(current.map((r) => [r.name, r.id]));
  return {
    refs: () => [...refs].map(([name, id]) => ({ name, id })),
    async listRefs(prefix) {
      return current.filter((r) => r.name.startsWith(prefix));
    },
    async hasMany(ids) {
      const remote = await Promise.all(ids.map((id) => remoteId(keys, id)));
      const missing = new Set(await relay.missing(remote));
      return remote.map((id) => !missing.has(id));
    },
    async receive(objects: readonly StoredObject[], updates: readonly RefUpdate[]) {
      // Children come before parents in `objects`, but uploads run concurrently; nothing points at them until the
      // manifest moves, after every upload has been acknowledged.
      const sealed = await Promise.all(objects.map((o) => sealObject(keys, o)));
      await mapLimit(batches(sealed), CONCURRENCY, (batch) => relay.putObjects(batch));
      for (const u of updates) {
        if (u.next === null) refs.delete(u.name);
        else refs.set(u.name, u.next);
      }
      return sealed.reduce((n, o) => n + o.bytes.length, 0);
    },
  };
}

/**
 * Publishes session `sessionId` from `store`. With `previous` (from an earlier publish of the same session) it
 * updates that snapshot, uploading only what changed; otherwise it creates a new snapshot under a fresh key.
 */
export async function publishSession(store: Store, sessionId: string, relay: RelayHttp, previous?: { snapshotId: string; writeToken: string; key: Uint8Array }): Promise<PublishResult> {
  const key = previous?.key ?? generateSessionKey();
  const keys = await deriveSessionKeys(key);
  let record: SnapshotRecord | undefined;
  let before: Ref[] = [];
  if (previous) {
    record = await relay.getSnapshot(previous.snapshotId);
    const manifest = await readManifest(relay, keys, record);
    if (manifest.session !== sessionId) {
      throw new FerryError('protocol/wrong-session', `Snapshot ${record.id} holds session ${manifest.session}, not ${sessionId}; publish a new snapshot instead.`);
    }
    before = manifestRefs(manifest);
  }
  const target = relayWriter(relay, keys, before);
  const sync = await syncSession(store, target, sessionId);
  const after = target.refs();
  const unchanged = record !== undefined && sameRefs(before, after);
  if (unchanged) return { snapshot: record!, writeToken: previous!.writeToken, key, sync, unchanged };

  const manifest = await sealObject(keys, await encodeManifest(makeManifest(sessionId, after)));
  await relay.putObject(manifest.id, manifest.bytes);
  sync.objectBytes += manifest.bytes.length;
  sync.totalBytes += manifest.bytes.length;
  if (record && previous) {
    const snapshot = await relay.updateSnapshot(record.id, previous.writeToken, manifest.id, record.manifest);
    return { snapshot, writeToken: previous.writeToken, key, sync, unchanged };
  }
  const created = await relay.createSnapshot(manifest.id);
  return { snapshot: created.snapshot, writeToken: created.writeToken, key, sync, unchanged };
}

/** Fetches snapshot `snapshotId` with its session key and imports the session (every branch, the head) into `store`. */
export async function fetchSnapshot(relay: RelayHttp, snapshotId: string, key: Uint8Array, store: Store): Promise<FetchResult> {
  const keys = await deriveSessionKeys(key);
  const snapshot = await relay.getSnapshot(snapshotId);
  const manifest = await readManifest(relay, keys, snapshot);
  const sync = await syncSession(relayReader(relay, keys, manifestRefs(manifest)), storeTarget(store), manifest.session);
  return { sessionId: manifest.session, snapshot, manifest, sync };
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
  const m = new Map<string, ObjectId>(a.map((r) => [r.name, r.id]));
  return a.length === b.length && b.every((r) => m.get(r.name) === r.id);
}
