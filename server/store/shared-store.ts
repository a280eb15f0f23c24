/**
 * The shared Store backend for relays that run as several replicas: object bytes in S3-compatible storage
 * (s3-objects.ts), and in Postgres the index of which objects exist and where, the refs and the reflog.
 *
 * A commit uploads its bytes first, then — in one Postgres transaction — indexes them and moves the refs by
 * compare-and-swap. The index is the truth: bytes uploaded by a commit that then failed (a ref conflict, the
 * database gone) are never seen by `has` or `get`, so nothing half-written is visible, from any replica. A pack
 * whose commit failed is removed; a lone object is content-addressed, so it may be another commit's and stays.
 */
import type { VerifyReport } from './fs-store.ts';
import { ContentStore, refConflict, type ObjectId, type Ref, type ReflogEntry, type StoreBackend, type StoredObject } from '../../src/core/store/index.ts';
import { Postgres, type Tx } from './postgres.ts';
import { parseObjectsUrl, type SharedLocation } from './locations.ts';
import { S3Objects, type Placement } from './s3-objects.ts';

interface ObjectRow {
  id: string;
  size: number;
  pack: string | null;
  offset: string | null;
}

interface LogRow {
  name: string;
  from: string | null;
  to: string | null;
  reason: string;
  at: number;
}

/** Objects verify() reads at once. */
const VERIFY_BATCH = 16;

export class SharedBackend implements StoreBackend {
  private constructor(
    readonly db: Postgres,
    readonly blobs: S3Objects,
  ) {}

  static async open(location: SharedLocation): Promise<SharedBackend> {
    const blobs = new S3Objects(parseObjectsUrl(location.objects));
    const db = await Postgres.open(location.database);
    return new SharedBackend(db, blobs);
  }

  async getObjects(ids: readonly ObjectId[]): Promise<(Uint8Array | undefined)[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.query<ObjectRow>('SELECT id, size, pack, "offset" FROM objects WHERE id = ANY($1)', [ids]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    const wanted = [...new Set(ids)].map((id) => byId.get(id)).filter((r): r is ObjectRow => r !== undefined);
    const placements: Placement[] = wanted.map((r) => ({ id: r.id, size: r.size, pack: r.pack, offset: r.offset === null ? null : Number(r.offset) }));
    const bytes = await this.blobs.read(placements);
    const found = new Map(placements.map((p, i) => [p.id, bytes[i]!]));
    return ids.map((id) => found.get(id));
  }

  async hasObjects(ids: readonly ObjectId[]): Promise<boolean[]> {
    if (ids.length === 0) return [];
    const rows = await this.db.query<{ id: string }>('SELECT id FROM objects WHERE id = ANY($1)', [ids]);
    const present = new Set(rows.map((r) => r.id));
    return ids.map((id) => present.has(id));
  }

  /**
   * The commit of StoreBackend. `alongside`, when given, runs in the same transaction after the refs moved: rows
   * that must change atomically with them (the snapshot registry's), and a throw from it undoes the whole commit.
   */
  async commit(objects: readonly StoredObject[], refs: readonly ReflogEntry[], alongside?: (tx: Tx) => Promise<void>): Promise<void> {
    const upload = await this.blobs.write(objects);
    try {
      await this.db.transaction(async (tx) => {
        const p = upload.placements;
        if (p.length > 0) {
          await tx.query(
            'INSERT INTO objects (id, size, pack, "offset") SELECT * FROM unnest($1::text[], $2::integer[], $3::text[], $4::bigint[]) ON CONFLICT (id) DO NOTHING',
            [p.map((o) => o.id), p.map((o) => o.size), p.map((o) => o.pack), p.map((o) => o.offset)],
          );
        }
        for (const r of refs) await moveRef(tx, r);
        if (refs.length > 0) {
          await tx.query(
            'INSERT INTO reflog (name, "from", "to", reason, at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])',
            [refs.map((r) => r.name), refs.map((r) => r.from), refs.map((r) => r.to), refs.map((r) => r.reason), refs.map((r) => r.at)],
          );
        }
        await alongside?.(tx);
      });
    } catch (cause) {
      await upload.discard();
      throw cause;
    }
  }

  async getRef(name: string): Promise<ObjectId | undefined> {
    return (await this.db.query<{ id: string }>('SELECT id FROM refs WHERE name = $1', [name]))[0]?.id;
  }

  async listRefs(prefix: string): Promise<Ref[]> {
    // left() rather than LIKE, whose "_" and "%" would match inside ref names; COLLATE "C" orders by code point, as the other stores do.
    const rows = await this.db.query<{ name: string; id: string }>('SELECT name, id FROM refs WHERE left(name, length($1)) = $1 ORDER BY name COLLATE "C"', [prefix]);
    return rows.map((r) => ({ name: r.name, id: r.id }));
  }

  async reflog(name: string): Promise<ReflogEntry[]> {
    const rows = await this.db.query<LogRow>('SELECT name, "from", "to", reason, at FROM reflog WHERE name = $1 ORDER BY seq', [name]);
    return rows.map((r) => ({ name: r.name, from: r.from, to: r.to, reason: r.reason, at: r.at }));
  }

  /**
   * Checks every indexed object reads back whole from the object storage and passes `check` (what is wrong with
   * it, or undefined: the relay's ids are HMACs, so it checks each is a sealed container), and every ref and reflog
   * target is indexed. `unindexed` counts loose objects and packs in the bucket that no index row places (uploads
   * whose commit failed): harmless, nothing refers to them.
   */
  async verify(check: (id: ObjectId, bytes: Uint8Array) => string | undefined): Promise<VerifyReport> {
    const problems: string[] = [];
    const indexed = await this.db.query<ObjectRow>('SELECT id, size, pack, "offset" FROM objects');
    // A few objects at a time, each on its own, so one unreadable object is reported and the others still checked.
    for (let i = 0; i < indexed.length; i += VERIFY_BATCH) {
      await Promise.all(indexed.slice(i, i + VERIFY_BATCH).map(async (o) => {
        const placement = { id: o.id, size: o.size, pack: o.pack, offset: o.offset === null ? null : Number(o.offset) };
        const bytes = await this.blobs.read([placement]).then(([b]) => b, () => undefined);
        const problem = bytes ? check(o.id, bytes) : 'is indexed but its bytes are missing or short';
        if (problem) problems.push(`object ${o.id} ${problem}`);
      }));
    }
    const known = new Set(indexed.map((o) => o.id));
    const refs = await this.db.query<{ name: string; id: string }>('SELECT name, id FROM refs');
    for (const r of refs) if (!known.has(r.id)) problems.push(`ref ${r.name} points at missing object ${r.id}`);
    for (const e of await this.db.query<LogRow>('SELECT name, "from", "to", reason, at FROM reflog')) {
      for (const id of [e.from, e.to]) if (id !== null && !known.has(id)) problems.push(`reflog of ${e.name} names missing object ${id}`);
    }
    const listed = await this.blobs.list();
    const packs = new Set(indexed.map((o) => o.pack).filter((p): p is string => p !== null));
    const unindexed = listed.loose.filter((id) => !known.has(id)).length + listed.packs.filter((p) => !packs.has(p)).length;
    return { objects: indexed.length, refs: refs.length, unindexed, problems };
  }

  /** Throws store/unavailable unless both the database and the object storage answer now. */
  async check(): Promise<{ database: string; objects: string }> {
    await Promise.all([this.db.check(), this.blobs.check()]);
    return { database: this.db.where, objects: this.blobs.where };
  }

  async close(): Promise<void> {
    this.blobs.close();
    await this.db.close();
  }
}

/** Compare-and-swap of one ref inside a transaction: the conditional write itself is the check, so racing commits serialise on the row. */
async function moveRef(tx: Tx, r: ReflogEntry): Promise<void> {
  // ON CONFLICT DO NOTHING: a racing creator of the same name waits for the first, then moves nothing.
  let moved: number;
  if (r.from === null && r.to !== null) moved = (await tx.query('INSERT INTO refs (name, id) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [r.name, r.to])).rowCount ?? 0;
  else if (r.from === null) moved = (await tx.query('SELECT 1 FROM refs WHERE name = $1', [r.name])).rowCount === 0 ? 1 : 0;
  else if (r.to === null) moved = (await tx.query('DELETE FROM refs WHERE name = $1 AND id = $2', [r.name, r.from])).rowCount ?? 0;
  else moved = (await tx.query('UPDATE refs SET id = $3 WHERE name = $1 AND id = $2', [r.name, r.from, r.to])).rowCount ?? 0;
  if (moved === 1) return;
  const actual = (await tx.query<{ id: string }>('SELECT id FROM refs WHERE name = $1', [r.name])).rows[0]?.id ?? null;
  throw refConflict(r.name, r.from, actual);
}

/** A shared store with the content-addressed layer on top. */
export async function openSharedStore(location: SharedLocation): Promise<ContentStore> {
  return new ContentStore(await SharedBackend.open(location));
}
