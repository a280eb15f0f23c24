/**
 * The versioned container around everything Ferry writes outside a store: `.ferry` files, sync bundles, sealed
 * relay objects and sealed messages (a run's input and events, which the relay carries but cannot read).
 *
 *   "FERRY" | version u8 | header length u32 BE | header (canonical MessagePack) | body
 *
 * The header names the payload kind, compression and cipher, the payload's exact length and (unencrypted) the
 * SHA-256 of the body as stored, so any change — even bytes appended after a deflate stream — is caught before
 * decompression; an encrypted body is AES-256-GCM with the whole prefix as additional data. Unknown versions are refused;
 * every length is checked against explicit limits before any memory is spent on it.
 */
import { deflateSync, inflateSync } from 'fflate';
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { bytesEqual, decodeMsgpack, encodeCanonical } from '../session/index.ts';
import type { SessionKeys } from './keys.ts';

export const MAGIC = new Uint8Array([0x46, 0x45, 0x52, 0x52, 0x59]); // "FERRY"
export const CONTAINER_VERSION = 1;
const PREFIX = MAGIC.length + 1 + 4;
const MAX_HEADER = 1024;

export type PayloadKind = 'bundle' | 'object' | 'message';

export interface ContainerLimits {
  /** Largest payload accepted after decompression. */
  maxPayload: number;
}

export const DEFAULT_LIMITS: ContainerLimits = { maxPayload: 256 << 20 };

const bin = (n: number) => v.pipe(v.instance(Uint8Array), v.check((b) => b.length === n, `must be ${n} bytes`));

const HeaderSchema = v.strictObject({
  kind: v.picklist(['bundle', 'object', 'message']),
  compression: v.picklist(['none', 'deflate']),
  cipher: v.picklist(['none', 'aes-256-gcm']),
  length: v.pipe(v.number(), v.integer(), v.minValue(0)),
  sha256: v.optional(bin(32)),
  iv: v.optional(bin(12)),
  keyId: v.optional(bin(8)),
});
type Header = v.InferOutput<typeof HeaderSchema>;

export interface EncodeOptions {
  kind: PayloadKind;
  /** Compress when it makes the payload smaller. */
  compress?: boolean;
  keys?: SessionKeys;
  /** Extra data the cipher binds the body to (e.g. a sealed object's remote id). */
  aad?: Uint8Array;
}

const bad = (what: string, details?: Record<string, unknown>): FerryError =>
  new FerryError('snapshot/bad-container', `${what}; the file or message is damaged or not a Ferry snapshot.`, details ? { details } : {});

export async function encodeContainer(payload: Uint8Array, opts: EncodeOptions): Promise<Uint8Array> {
  let body = payload;
  let compression: Header['compression'] = 'none';
  if (opts.compress !== false && payload.length > 64 && worthCompressing(payload)) {
    const deflated = deflateSync(payload, { level: 6 });
    if (deflated.length < payload.length) {
      body = deflated;
      compression = 'deflate';
    }
  }
  const header: Header = opts.keys
    ? { kind: opts.kind, compression, cipher: 'aes-256-gcm', length: payload.length, iv: globalThis.crypto.getRandomValues(new Uint8Array(12)), keyId: opts.keys.keyId }
    : { kind: opts.kind, compression, cipher: 'none', length: payload.length, sha256: new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', body as Uint8Array<ArrayBuffer>)) };
  const prefix = writePrefix(encodeCanonical(header));
  if (opts.keys) {
    body = new Uint8Array(
      await globalThis.crypto.subtle.encrypt({ name: 'AES-GCM', iv: header.iv as Uint8Array<ArrayBuffer>, additionalData: concat(prefix, opts.aad ?? new Uint8Array(0)) }, opts.keys.encrypt, body as Uint8Array<ArrayBuffer>),
    );
  }
  return concat(prefix, body);
}

export interface DecodeOptions {
  kind: PayloadKind;
  keys?: SessionKeys;
  aad?: Uint8Array;
  limits?: ContainerLimits;
}

export async function decodeContainer(bytes: Uint8Array, opts: DecodeOptions): Promise<Uint8Array> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  if (bytes.length < PREFIX || !bytesEqual(bytes.subarray(0, MAGIC.length), MAGIC)) throw bad('It does not start with the Ferry magic bytes');
  const version = bytes[MAGIC.length]!;
  if (version !== CONTAINER_VERSION) {
    throw new FerryError('snapshot/bad-version', `This snapshot uses container version ${version}; this Ferry reads version ${CONTAINER_VERSION} only. Update Ferry (or export again from the same version).`, {
      details: { version },
    });
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset + MAGIC.length + 1, 4).getUint32(0);
  if (headerLength > MAX_HEADER || PREFIX + headerLength > bytes.length) throw bad(`Its header length ${headerLength} is out of bounds`);
  const headerBytes = bytes.subarray(PREFIX, PREFIX + headerLength);
  const parsed = v.safeParse(HeaderSchema, decodeMsgpack(headerBytes, 'snapshot/bad-container', 'The snapshot header'));
  if (!parsed.success) throw bad(`Its header is malformed (${parsed.issues[0]?.message ?? 'invalid'})`);
  const header = parsed.output;
  if (!bytesEqual(encodeCanonical(header), headerBytes)) throw bad('Its header is not canonical');
  if (header.kind !== opts.kind) throw bad(`It holds a ${header.kind}, not a ${opts.kind}`);
  if (header.length > limits.maxPayload) {
    throw new FerryError('snapshot/too-large', `The snapshot claims ${header.length} bytes, over the limit of ${limits.maxPayload}; refusing to load it.`, { details: { length: header.length } });
  }
  let body = bytes.subarray(PREFIX + headerLength);
  if (header.cipher === 'aes-256-gcm') {
    if (!header.iv || !header.keyId || header.sha256) throw bad('Its cipher header is incomplete');
    if (!opts.keys) throw new FerryError('snapshot/key-required', 'This snapshot is encrypted; open it with its session key (the #fragment of the share link).');
    if (!bytesEqual(header.keyId, opts.keys.keyId)) throw new FerryError('snapshot/wrong-key', 'This snapshot was encrypted with a different session key; check the link or key you used.');
    try {
      body = new Uint8Array(
        await globalThis.crypto.subtle.decrypt({ name: 'AES-GCM', iv: header.iv as Uint8Array<ArrayBuffer>, additionalData: concat(bytes.subarray(0, PREFIX + headerLength), opts.aad ?? new Uint8Array(0)) }, opts.keys.encrypt, body as Uint8Array<ArrayBuffer>),
      );
    } catch (cause) {
      throw new FerryError('snapshot/auth-failed', 'The encrypted snapshot failed authentication: it was altered or truncated after it was written. Fetch it again.', { cause });
    }
  } else {
    if (!header.sha256 || header.iv || header.keyId) throw bad('Its plain header is incomplete');
    const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', body as Uint8Array<ArrayBuffer>));
    if (!bytesEqual(digest, header.sha256)) throw new FerryError('snapshot/bad-checksum', 'The snapshot does not match its checksum: it was damaged after it was written. Export or fetch it again.');
  }
  // Deflate expands at most ~1032:1; a larger claim is a lie we need not allocate memory for.
  if (header.compression === 'deflate' ? header.length > body.length * 1032 + 64 : header.length !== body.length) {
    throw bad(`Its header claims ${header.length} payload bytes from a ${body.length}-byte body`);
  }
  const payload = header.compression === 'deflate' ? inflateExactly(body, header.length) : body;
  if (payload.length !== header.length) throw bad(`Its payload is ${payload.length} bytes, the header says ${header.length}`);
  return payload;
}

/**
 * Deflate runs at ~20 MB/s on these machines, and random-looking data (encrypted or already-compressed state, a KV
 * cache's floats) does not shrink: deflate samples from the start, middle and end first (at the fastest level, a
 * few percent of the full cost) and skip compression when they gain under 10%. Small payloads are just tried.
 */
function worthCompressing(payload: Uint8Array): boolean {
  if (payload.length <= 4096) return true;
  const SAMPLE = Math.min(64 * 1024, Math.max(1024, payload.length >> 6));
  const at = [0, Math.floor((payload.length - SAMPLE) / 2), payload.length - SAMPLE];
  const sample = new Uint8Array(3 * SAMPLE);
  at.forEach((start, i) => sample.set(payload.subarray(start, start + SAMPLE), i * SAMPLE));
  // A small hash table (mem 4): fflate's default sizes one for the whole payload, which costs more than the sample.
  return deflateSync(sample, { level: 1, mem: 4 }).length < sample.length * 0.9;
}

/** Inflates into a buffer one byte longer than promised, so an over-long stream is caught without growing memory. */
function inflateExactly(body: Uint8Array, length: number): Uint8Array {
  try {
    return inflateSync(body, { out: new Uint8Array(length + 1) });
  } catch (cause) {
    throw new FerryError('snapshot/bad-container', 'The snapshot body does not decompress; it is damaged.', { cause });
  }
}

function writePrefix(header: Uint8Array): Uint8Array {
  const out = new Uint8Array(PREFIX + header.length);
  out.set(MAGIC);
  out[MAGIC.length] = CONTAINER_VERSION;
  new DataView(out.buffer).setUint32(MAGIC.length + 1, header.length);
  out.set(header, PREFIX);
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
