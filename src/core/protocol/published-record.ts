/**
 * What a device keeps (in its own storage, never on the relay or in a URL) to update a snapshot it published, or to
 * follow a session it moved there: the snapshot record, its write token and the session key. It holds secrets.
 */
import * as v from 'valibot';
import { FerryError, type ErrorCode } from '../errors.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';
import type { PublishedSnapshot } from './snapshot-sync.ts';
import { parseWire } from './validate.ts';
import { SnapshotRecordSchema, WriteTokenSchema } from './wire.ts';

export const StoredPublishedSchema = v.strictObject({
  v: v.literal(1),
  snapshot: SnapshotRecordSchema,
  writeToken: WriteTokenSchema,
  key: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)),
});

export function serializePublished(p: PublishedSnapshot): string {
  return JSON.stringify(publishedJson(p));
}

export function publishedJson(p: PublishedSnapshot): v.InferOutput<typeof StoredPublishedSchema> {
  return { v: 1, snapshot: p.snapshot, writeToken: p.writeToken, key: toBase64Url(p.key) };
}

/** A saved record, checked; `code` names the record in the error a damaged one gets. */
export function restorePublished(text: string, code: ErrorCode = 'protocol/bad-published'): PublishedSnapshot {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FerryError(code, 'The saved share record is not JSON; publish the session again.');
  }
  return publishedFrom(parseWire(StoredPublishedSchema, value, 'The saved share record', code));
}

export function publishedFrom(p: v.InferOutput<typeof StoredPublishedSchema>): PublishedSnapshot {
  return { snapshot: p.snapshot, writeToken: p.writeToken, key: fromBase64Url(p.key) };
}
