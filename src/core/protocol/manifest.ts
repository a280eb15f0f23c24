/**
 * A published snapshot's manifest: which session, its refs (branches + head) as local object ids, and the session's
 * title when the publisher names it (a share: the link opens under the same title). It travels
 * sealed like every other object, so the relay learns neither the session id, nor branch names, nor content hashes:
 * it only knows the manifest's remote id, which the snapshot record points at.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { SessionTitleSchema, decodeMsgpack, encodeCanonical, parseSessionRef } from '../session/index.ts';
import { objectId, type ObjectId, type Ref, type StoredObject } from '../store/index.ts';

export const MANIFEST_VERSION = 1;

const ManifestSchema = v.strictObject({
  k: v.literal('ferry/snapshot-manifest'),
  v: v.literal(MANIFEST_VERSION),
  session: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
  refs: v.pipe(
    v.array(v.strictObject({ name: v.string(), id: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) })),
    v.minLength(1),
    v.maxLength(4096),
  ),
  at: v.pipe(v.number(), v.integer(), v.minValue(0)),
  title: v.optional(SessionTitleSchema),
});
export type SnapshotManifest = v.InferOutput<typeof ManifestSchema>;

export function makeManifest(session: string, refs: readonly Ref[], at = Date.now(), title?: string): SnapshotManifest {
  const sorted = [...refs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((r) => ({ name: r.name, id: r.id }));
  return checkManifest({ k: 'ferry/snapshot-manifest', v: MANIFEST_VERSION, session, refs: sorted, at: Math.floor(at), ...(title === undefined ? {} : { title }) });
}

/** The manifest as a storable object (canonical bytes and their id), ready to be sealed. */
export async function encodeManifest(manifest: SnapshotManifest): Promise<StoredObject> {
  const bytes = encodeCanonical(manifest);
  return { id: await objectId(bytes), bytes };
}

export function decodeManifest(bytes: Uint8Array): SnapshotManifest {
  return checkManifest(decodeMsgpack(bytes, 'protocol/bad-manifest', 'The snapshot manifest'));
}

/** Validates shape, and that every ref is a ref of the manifest's own session (no smuggled names). */
function checkManifest(value: unknown): SnapshotManifest {
  const parsed = v.safeParse(ManifestSchema, value);
  if (!parsed.success) {
    throw new FerryError('protocol/bad-manifest', `The snapshot manifest is malformed (${parsed.issues[0]?.message ?? 'invalid'}); the snapshot is damaged or from another version of Ferry.`);
  }
  const m = parsed.output;
  const names = new Set<string>();
  for (const r of m.refs) {
    const ref = parseSessionRef(r.name);
    if (!ref || ref.sessionId !== m.session || names.has(r.name)) {
      throw new FerryError('protocol/bad-manifest', `The snapshot manifest names ref ${JSON.stringify(r.name.slice(0, 80))}, which is not a unique ref of session ${m.session}.`);
    }
    names.add(r.name);
  }
  if (!m.refs.some((r) => parseSessionRef(r.name)?.kind === 'head')) {
    throw new FerryError('protocol/bad-manifest', 'The snapshot manifest has no head ref; it cannot be opened as a session.');
  }
  return m;
}

export const manifestRefs = (m: SnapshotManifest): Ref[] => m.refs.map((r) => ({ name: r.name, id: r.id as ObjectId }));
