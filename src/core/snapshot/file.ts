/**
 * A whole session (every branch, the head, all tool state) as one `.ferry` file: a container around a canonical
 * bundle { v, session, refs, objects, title? }. Import validates everything, then commits once — all or nothing. A file is
 * plain (compressed, checksummed: anyone who has it reads it), or protected by a passphrase (AES-256-GCM under a
 * PBKDF2-SHA256 key); `describeFerryFile` says which before anything is asked of the person.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { objectId, type Store, type StoredObject } from '../store/index.ts';
import { SessionTitleSchema, assertSessionId, decodeMsgpack, encodeCanonical, headRef, parseSessionRef, sessionPrefix } from '../session/index.ts';
import { collectClosure } from './closure.ts';
import { decodeContainer, describeContainer, encodeContainer, type ContainerLimits, type Protection } from './container.ts';
import type { SessionKeys } from './keys.ts';
import { receiveObjects } from './receive.ts';

export const BUNDLE_VERSION = 1;

const BundleSchema = v.strictObject({
  v: v.literal(BUNDLE_VERSION),
  session: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
  refs: v.pipe(v.array(v.strictTuple([v.string(), v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))])), v.minLength(1), v.maxLength(10_000)),
  objects: v.pipe(v.array(v.instance(Uint8Array)), v.maxLength(1 << 20)),
  /** The session's title where it was exported, so it is imported under the same one. */
  title: v.optional(SessionTitleSchema),
});

export interface ExportOptions {
  /** Encrypt the file with the session key; without it the file is compressed plaintext with a checksum. */
  keys?: SessionKeys;
  /** Encrypt the file with a key derived from this passphrase (what a person protects an export with). */
  passphrase?: string;
  /** The session's title, carried in the file. */
  title?: string;
}

export async function exportSession(store: Store, sessionId: string, opts: ExportOptions = {}): Promise<Uint8Array> {
  assertSessionId(sessionId);
  const refs = await store.listRefs(sessionPrefix(sessionId));
  if (refs.length === 0) throw new FerryError('session/not-found', `Session ${sessionId} is not in this store; nothing to export.`);
  const objects = await collectClosure(store, refs);
  // A title that would not read back (empty, too long) is left out rather than failing the export.
  const checked = v.safeParse(SessionTitleSchema, opts.title);
  const title = checked.success ? checked.output : undefined;
  const payload = encodeCanonical({ v: BUNDLE_VERSION, session: sessionId, refs: refs.map((r) => [r.name, r.id]), objects: objects.map((o) => o.bytes), ...(title ? { title } : {}) });
  return encodeContainer(payload, { kind: 'bundle', ...(opts.keys ? { keys: opts.keys } : {}), ...(opts.passphrase !== undefined ? { passphrase: opts.passphrase } : {}) });
}

export interface ImportOptions {
  keys?: SessionKeys;
  /** The passphrase of a protected file (describeFerryFile says whether it is one). */
  passphrase?: string;
  limits?: ContainerLimits;
}

/**
 * How a `.ferry` file is protected — 'none' (plain: anyone who has the file reads it), 'passphrase', or 'session-key'
 * — read from its header alone. Throws a typed error for anything that is not a Ferry session file.
 */
export function describeFerryFile(file: Uint8Array): { protection: Protection } {
  const described = describeContainer(file);
  if (described.kind !== 'bundle') throw new FerryError('snapshot/bad-container', `This holds a ${described.kind}, not a session; it is not a .ferry export.`);
  return { protection: described.protection };
}

/** Imports a `.ferry` file into `store`; returns the session id. Nothing is stored unless everything checks out. */
export async function importSession(store: Store, file: Uint8Array, opts: ImportOptions = {}): Promise<string> {
  return (await importFerryFile(store, file, opts)).session;
}

/** `importSession`, with the title the session was exported under (absent in files that carry none). */
export async function importFerryFile(store: Store, file: Uint8Array, opts: ImportOptions = {}): Promise<{ session: string; title?: string }> {
  const payload = await decodeContainer(file, { kind: 'bundle', keys: opts.keys, passphrase: opts.passphrase, limits: opts.limits });
  const parsed = v.safeParse(BundleSchema, decodeMsgpack(payload, 'snapshot/bad-bundle', 'The session bundle'));
  if (!parsed.success) {
    throw new FerryError('snapshot/bad-bundle', `The session bundle is malformed (${parsed.issues[0]?.message ?? 'invalid'}); it is damaged or not a Ferry export.`);
  }
  const bundle = parsed.output;
  for (const [name] of bundle.refs) {
    if (parseSessionRef(name)?.sessionId !== bundle.session) {
      throw new FerryError('snapshot/bad-ref', `The bundle for session ${bundle.session} carries ref ${JSON.stringify(name.slice(0, 80))}, which is not one of its refs.`);
    }
  }
  if (new Set(bundle.refs.map(([name]) => name)).size !== bundle.refs.length) throw new FerryError('snapshot/bad-ref', 'The bundle names a ref twice.');
  if (!bundle.refs.some(([name]) => name === headRef(bundle.session))) throw new FerryError('snapshot/bad-ref', 'The bundle has no head ref; it is not a whole session.');
  if ((await store.listRefs(sessionPrefix(bundle.session))).length > 0) {
    throw new FerryError('session/exists', `Session ${bundle.session} is already in this store; delete it or sync into it instead of importing.`);
  }
  const objects: StoredObject[] = await Promise.all(bundle.objects.map(async (bytes) => ({ id: await objectId(bytes), bytes })));
  if (new Set(objects.map((o) => o.id)).size !== objects.length) throw new FerryError('snapshot/bad-bundle', 'The bundle carries the same object twice; it was not written by Ferry.');
  await receiveObjects(store, objects, bundle.refs.map(([name, id]) => ({ name, expect: null, next: id, reason: 'import' })));
  return { session: bundle.session, ...(bundle.title === undefined ? {} : { title: bundle.title }) };
}
