/**
 * The relay's data: sealed objects under their remote ids in the filesystem store (server/store), the snapshot
 * registry and the run records beside them, all in `<data>/relay/`. Ids reach the disk only after validation as lower-case hex, and
 * the store builds every path itself, so no request chooses a path.
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { FerryError } from '../../src/core/errors.ts';
import { checkSealedObject } from '../../src/core/protocol/index.ts';
import { FsBackend } from '../store/index.ts';
import { RunRegistry } from './run-registry.ts';
import { SnapshotRegistry } from './snapshot-registry.ts';

export class RelayStore {
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
    for (const o of objects) checkSealedObject(o.bytes, maxPayload);
    const unique = [...new Map(objects.map((o) => [o.id, o])).values()];
    const present = await this.objects.hasObjects(unique.map((o) => o.id));
    const fresh = unique.filter((_, i) => !present[i]);
    if (fresh.length > 0) await this.objects.commit(fresh, []);
    return fresh.length;
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

  async close(): Promise<void> {
    this.runs.close();
    this.snapshots.close();
    await this.objects.close();
  }
}
