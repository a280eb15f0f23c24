/**
 * The relay's data: sealed objects under their remote ids in the filesystem store (server/store), the snapshot
 * registry and the run records beside them, all in `<data>/relay/`. Ids reach the disk only after validation as lower-case hex, and
 * the store builds every path itself, so no request chooses a path.
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { FerryError } from '../../src/core/errors.ts';
import { CONTENTS_LIMITS, LIMITS, checkSealedObject, type SnapshotRecord } from '../../src/core/protocol/index.ts';
import { FsBackend, type VerifyReport } from '../store/index.ts';
import { RunRegistry } from './run-registry.ts';
import { SnapshotRegistry, type PublishInput, type SnapshotContents } from './snapshot-registry.ts';

export class RelayStore {
  /**
   * The largest payload a sealed object may claim, on every path that stores objects. The object routes set it from
   * the relay's configuration when they are registered (the same limit their own uploads are held to).
   */
  maxObjectBytes: number = LIMITS.maxObjectBytes;

  private constructor(
    readonly objects: FsBackend,
    readonly snapshots: SnapshotRegistry,
    readonly runs: RunRegistry,
  ) {}

  static async open(dataDir: string): Promise<RelayStore> {
    const dir = path.join(dataDir, 'relay');
    await mkdir(dir, { recursive: true });
    const objects = await FsBackend.open(dir);
    return new RelayStore(objects, SnapshotRegistry.open(dir, objects), RunRegistry.open(dir));
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
    this.runs.close();
    await this.objects.close();
  }
}
