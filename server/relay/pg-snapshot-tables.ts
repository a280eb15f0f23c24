/**
 * The snapshot registry's rows in Postgres, beside the shared store's refs (server/store/shared-store.ts): a
 * publish's objects, ref move, new snapshot row and hints commit in one transaction, whichever replica takes it.
 */
import type { ReflogEntry, StoredObject } from '../../src/core/store/index.ts';
import type { SharedBackend } from '../store/shared-store.ts';
import type { PublishHints, SnapshotTables } from './snapshot-registry.ts';

export class PgSnapshotTables implements SnapshotTables {
  constructor(readonly objects: SharedBackend) {}

  async row(id: string): Promise<{ tokenHash: Uint8Array; createdAt: number } | undefined> {
    const [row] = await this.objects.db.query<{ token_hash: Buffer; created_at: string }>('SELECT token_hash, created_at FROM snapshots WHERE id = $1', [id]);
    return row && { tokenHash: row.token_hash, createdAt: Number(row.created_at) };
  }

  async hints(id: string, manifests: readonly string[]): Promise<PublishHints[]> {
    if (manifests.length === 0) return [];
    const rows = await this.objects.db.query<{ manifest: string; ids: Buffer; pages: Buffer | null }>('SELECT manifest, ids, pages FROM snapshot_structure WHERE snapshot = $1 AND manifest = ANY($2)', [id, manifests]);
    const byManifest = new Map(rows.map((r) => [r.manifest, { ids: r.ids, pages: r.pages ?? new Uint8Array() }]));
    return manifests.flatMap((m) => byManifest.get(m) ?? []);
  }

  commit(objects: readonly StoredObject[], move: ReflogEntry, created: { id: string; tokenHash: Uint8Array; at: number } | undefined, hints: ({ snapshot: string; manifest: string } & PublishHints) | undefined): Promise<void> {
    return this.objects.commit(objects, [move], async (tx) => {
      if (created) await tx.query('INSERT INTO snapshots (id, token_hash, created_at) VALUES ($1, $2, $3)', [created.id, created.tokenHash, created.at]);
      if (hints) {
        await tx.query(
          'INSERT INTO snapshot_structure (snapshot, manifest, ids, pages) VALUES ($1, $2, $3, $4) ON CONFLICT (snapshot, manifest) DO UPDATE SET ids = excluded.ids, pages = excluded.pages',
          [hints.snapshot, hints.manifest, hints.ids, hints.pages.length > 0 ? hints.pages : null],
        );
      }
    });
  }
}
