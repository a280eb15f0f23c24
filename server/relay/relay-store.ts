/**
 * The relay's data: sealed objects under their remote ids, the snapshot registry and the run records. Embedded
 * (the default, one process): the filesystem store (server/store) with the registries beside it, all in
 * `<data>/relay/`. Shared (replicas): bytes in S3-compatible storage and everything else in Postgres
 * (server/store/shared-store.ts). Ids reach storage only after validation as lower-case hex, and the store builds
 * every path and key itself, so no request chooses one.
 */
import path from 'node:path';
import { access, mkdir } from 'node:fs/promises';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import { CONTENTS_LIMITS, LIMITS, checkSealedObject, type SnapshotRecord } from '../../src/core/protocol/index.ts';
import { FsBackend, type VerifyReport } from '../store/index.ts';
import type { SharedLocation } from '../store/locations.ts';
import type { SharedBackend } from '../store/shared-store.ts';
import type { PgBus } from './pg-bus.ts';
import type { RunLog } from './run-log.ts';
import { RunRegistry } from './run-registry.ts';
import { SnapshotRegistry, SqliteSnapshotTables, type PublishInput, type SnapshotContents } from './snapshot-registry.ts';

/** One dependency as /healthz reports it. */
export interface DependencyHealth {
  status: 'ok' | 'unavailable';
  /** What it is and where (no credentials). */
  where: string;
  /** Why it is unavailable. */
  error?: { code: string; message: string };
}

/** Sealed objects of the latest publishes kept in memory: whoever resumes or follows a session reads them next. */
const RECENT_BYTES = 16 * 1024 * 1024;

export class RelayStore {
  /**
   * The largest payload a sealed object may claim, on every path that stores objects. The object routes set it from
   * the relay's configuration when they are registered (the same limit their own uploads are held to).
   */
  maxObjectBytes: number = LIMITS.maxObjectBytes;

  private constructor(
    readonly objects: FsBackend | SharedBackend,
    readonly snapshots: SnapshotRegistry,
    readonly runs: RunLog,
    /** Shared backends only: how replicas hear of each other's events. */
    readonly bus?: PgBus,
  ) {}

  /** Embedded in `<dataDir>/relay/`, or — given `shared` — on Postgres and S3-compatible storage. */
  static async open(dataDir: string, shared?: SharedLocation): Promise<RelayStore> {
    const dir = path.join(dataDir, 'relay');
    await mkdir(dir, { recursive: true });
    if (shared) {
      // Loaded only here: `ferry start` on SQLite and files never loads pg or the AWS SDK.
      const [{ SharedBackend }, { PgSnapshotTables }, { PgBus }, { PgRunLog, RUN_EVENTS_CHANNEL }, { DISPATCH_CHANNEL }] = await Promise.all([
        import('../store/shared-store.ts'),
        import('./pg-snapshot-tables.ts'),
        import('./pg-bus.ts'),
        import('./pg-run-log.ts'),
        import('./shared-dispatcher.ts'),
      ]);
      const objects = await SharedBackend.open(shared);
      const bus = await PgBus.open(objects.db, [RUN_EVENTS_CHANNEL, DISPATCH_CHANNEL]).catch(async (err: unknown) => {
        await objects.close();
        throw err;
      });
      return new RelayStore(objects, new SnapshotRegistry(new PgSnapshotTables(objects)), new PgRunLog(objects.db, bus), bus);
    }
    const objects = await FsBackend.open(dir, { recentBytes: RECENT_BYTES });
    return new RelayStore(objects, new SnapshotRegistry(new SqliteSnapshotTables(objects, dir)), RunRegistry.open(dir));
  }

  /** Each dependency the relay's data lives in, checked now. */
  async health(): Promise<Record<'database' | 'objects', DependencyHealth>> {
    const o = this.objects;
    const probe = async (where: string, check: () => Promise<unknown>): Promise<DependencyHealth> => {
      try {
        await check();
        return { status: 'ok', where };
      } catch (err) {
        const error = isFerryError(err) ? { code: err.code, message: err.message } : { code: 'store/unavailable', message: String(err) };
        return { status: 'unavailable', where, error };
      }
    };
    if (!(o instanceof FsBackend)) {
      const [database, objects] = await Promise.all([probe(`postgres ${o.db.where}`, () => o.db.check()), probe(o.blobs.where, () => o.blobs.check())]);
      return { database, objects };
    }
    const [database, objects] = await Promise.all([
      probe(`sqlite ${path.join(o.dir, 'meta.sqlite')}`, async () => o.database.prepare('SELECT 1').get()),
      probe(`files ${o.dir}`, () => access(path.join(o.dir, 'objects'))),
    ]);
    return { database, objects };
  }

  async missing(ids: readonly string[]): Promise<string[]> {
    const present = await this.objects.hasObjects(ids);
    return ids.filter((_, i) => !present[i]);
  }

  /** Stores a sealed object; the first upload of an id wins, so nobody can replace an object they did not write. */
  async putObject(id: string, bytes: Uint8Array, maxPayload: number): Promise<{ created: boolean; size: number }> {
    checkSealedObject(bytes, maxPayload);
    const [present] = await this.objects.hasObjects([id]);
    if (present) return { created: false, size: bytes.length };
    await this.objects.commit([{ id, bytes }], []);
    return { created: true, size: bytes.length };
  }

  /** Stores a batch in one commit (one SQLite transaction, one fsync per directory); returns how many were new. */
  async putObjects(objects: readonly { id: string; bytes: Uint8Array }[], maxPayload: number): Promise<number> {
    const fresh = await this.freshSealed(objects, maxPayload);
    if (fresh.length > 0) await this.objects.commit(fresh, []);
    return fresh.length;
  }

  /**
   * Publishes a snapshot (new, or an update with its write token) together with the sealed objects that complete it:
   * every object is checked to be sealed first, and objects, move and hints land in one commit. Returns how many
   * objects were new.
   */
  async publish(input: PublishInput): Promise<{ snapshot: SnapshotRecord; writeToken?: string; created: number }> {
    const fresh = await this.freshSealed(input.objects, this.maxObjectBytes);
    return { ...(await this.snapshots.publish({ ...input, objects: fresh })), created: fresh.length };
  }

  contents(id: string, since: number | undefined): Promise<SnapshotContents> {
    return this.snapshots.contents(id, since, CONTENTS_LIMITS);
  }

  /** The sealed objects among `objects` the store does not hold yet, once each; refuses the lot if one is not sealed. */
  private async freshSealed(objects: readonly { id: string; bytes: Uint8Array }[], maxPayload: number): Promise<{ id: string; bytes: Uint8Array }[]> {
    for (const o of objects) checkSealedObject(o.bytes, maxPayload);
    const unique = [...new Map(objects.map((o) => [o.id, o])).values()];
    const present = await this.objects.hasObjects(unique.map((o) => o.id));
    return unique.filter((_, i) => !present[i]);
  }

  /** The held objects among `ids`, in order, stopping before the total would pass `maxBytes` (the client asks again). */
  async getObjects(ids: readonly string[], maxBytes: number): Promise<{ id: string; bytes: Uint8Array }[]> {
    const out: { id: string; bytes: Uint8Array }[] = [];
    let total = 0;
    // Read in small groups so an oversized request never holds more than a group beyond the cap in memory.
    for (let i = 0; i < ids.length; i += 16) {
      const group = ids.slice(i, i + 16);
      const found = await this.objects.getObjects(group);
      for (const [j, bytes] of found.entries()) {
        if (!bytes) continue;
        if (out.length > 0 && total + bytes.length > maxBytes) return out;
        out.push({ id: group[j]!, bytes });
        total += bytes.length;
      }
    }
    return out;
  }

  async getObject(id: string): Promise<Uint8Array> {
    const [bytes] = await this.objects.getObjects([id]);
    if (!bytes) throw new FerryError('relay/unknown-object', `The relay holds no object ${id}.`);
    return bytes;
  }

  /**
   * Checks the relay's store: every object reads back whole and is a sealed container within the size limit (its
   * id is an HMAC the relay cannot recompute; whoever holds the key checks the rest when opening it), and every ref
   * and reflog entry names a stored object.
   */
  verify(): Promise<VerifyReport> {
    return this.objects.verify((_id, bytes) => {
      try {
        checkSealedObject(bytes, this.maxObjectBytes);
        return undefined;
      } catch (err) {
        return `is not a sealed object (${err instanceof Error ? err.message : String(err)})`;
      }
    });
  }

  async close(): Promise<void> {
    await this.runs.close();
    await this.bus?.close();
    await this.objects.close();
  }
}
