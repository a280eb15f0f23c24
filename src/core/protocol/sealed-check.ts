/**
 * What the relay can check about sealed bytes without the session key: they are a Ferry container (snapshot/
 * container.ts) holding an encrypted object or message, within the size limit. This is how the relay refuses
 * plaintext — it stores only ciphertext, objects and run events alike — and refuses junk before it touches the disk.
 * Authenticity (the right bytes under the right id, for the right run) is checked by whoever holds the key.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { bytesEqual, decodeMsgpack } from '../session/index.ts';
import { CONTAINER_VERSION, MAGIC } from '../snapshot/index.ts';

const PREFIX = MAGIC.length + 1 + 4;
const MAX_HEADER = 1024;
/** AES-GCM appends a 16-byte tag: an encrypted body is never shorter. */
const GCM_TAG = 16;

const SealedHeaderSchema = v.object({
  kind: v.picklist(['object', 'message']),
  cipher: v.literal('aes-256-gcm'),
  compression: v.picklist(['none', 'deflate']),
  length: v.pipe(v.number(), v.integer(), v.minValue(0)),
  iv: v.pipe(v.instance(Uint8Array), v.length(12)),
  keyId: v.pipe(v.instance(Uint8Array), v.length(8)),
});

const refuseAs = (why: string, what: string): FerryError =>
  new FerryError('relay/not-sealed', `The upload is not an encrypted Ferry ${what} (${why}); the relay stores only data sealed with a session key.`);

/** Throws 'relay/not-sealed' unless `bytes` is a sealed object container whose claimed payload fits `maxPayload`. */
export function checkSealedObject(bytes: Uint8Array, maxPayload: number): void {
  checkSealed(bytes, 'object', maxPayload);
}

/** Throws 'relay/not-sealed' unless `bytes` is a sealed container of `kind` whose claimed payload fits `maxPayload`. */
export function checkSealed(bytes: Uint8Array, kind: 'object' | 'message', maxPayload: number): void {
  const refuse = (why: string): FerryError => refuseAs(why, kind);
  if (bytes.length < PREFIX || !bytesEqual(bytes.subarray(0, MAGIC.length), MAGIC)) throw refuse('no Ferry magic bytes');
  if (bytes[MAGIC.length] !== CONTAINER_VERSION) throw refuse(`container version ${bytes[MAGIC.length]}, expected ${CONTAINER_VERSION}`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset + MAGIC.length + 1, 4).getUint32(0);
  if (headerLength > MAX_HEADER || PREFIX + headerLength + GCM_TAG > bytes.length) throw refuse(`header length ${headerLength} out of bounds`);
  let header: unknown;
  try {
    header = decodeMsgpack(bytes.subarray(PREFIX, PREFIX + headerLength), 'relay/not-sealed', 'The header');
  } catch {
    throw refuse('its header is not MessagePack');
  }
  const parsed = v.safeParse(SealedHeaderSchema, header);
  if (parsed.success && parsed.output.kind !== kind) throw refuse(`it holds a ${parsed.output.kind}`);
  if (!parsed.success) throw refuse(`header ${parsed.issues[0]?.path?.map((p) => String(p.key)).join('.') ?? ''}: ${parsed.issues[0]?.message ?? 'invalid'}`);
  if (parsed.output.length > maxPayload) {
    throw new FerryError('relay/too-large', `The object claims ${parsed.output.length} payload bytes, over this relay's limit of ${maxPayload}.`);
  }
}
