/**
 * The versioned container around everything Ferry writes outside a store: `.ferry` files, sync bundles, sealed
 * relay objects and sealed messages (a run's input and events, which the relay carries but cannot read).
 *
 *   "FERRY" | version u8 | header length u32 BE | header (canonical MessagePack) | body
 *
 * The header names the payload kind, compression and cipher, the payload's exact length and (unencrypted) the
 * SHA-256 of the body as stored, so any change — even bytes appended after a deflate stream — is caught before
 * decompression; an encrypted body is AES-256-GCM with the whole prefix as additional data. Its key is a session
 * key's, or (version 2, `.ferry` files a person protects) one derived from a passphrase with PBKDF2-SHA256, whose
 * salt and iteration count the header names. Unknown versions are refused; every length is checked against
 * explicit limits before any memory is spent on it.
 */
import { deflateSync, inflateSync } from 'fflate';
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { bytesEqual, decodeMsgpack, encodeCanonical } from '../session/index.ts';
import { deriveSessionKeys, type SessionKeys } from './keys.ts';

export const MAGIC = new Uint8Array([0x46, 0x45, 0x52, 0x52, 0x59]); // "FERRY"
/** What every container is written as, unless a passphrase protects it. */
export const CONTAINER_VERSION = 1;
/** Containers protected by a passphrase (their header names the KDF); readers of version 1 only refuse them clearly. */
export const PASSPHRASE_CONTAINER_VERSION = 2;

/**
 * PBKDF2-SHA256 (WebCrypto, everywhere): 600,000 iterations as OWASP recommends for it (2023). A file claiming fewer
 * than 100,000 is refused as weak, more than 10,000,000 as a way to make the reader spin.
 */
export const PASSPHRASE_KDF = { iterations: 600_000, minIterations: 100_000, maxIterations: 10_000_000, saltBytes: 16 } as const;
const PREFIX = MAGIC.length + 1 + 4;
const MAX_HEADER = 1024;

export type PayloadKind = 'bundle' | 'object' | 'message';

export interface ContainerLimits {
  /** Largest payload accepted after decompression. */
  maxPayload: number;
}

export const DEFAULT_LIMITS: ContainerLimits = { maxPayload: 256 << 20 };

const bin = (n: number) => v.pipe(v.instance(Uint8Array), v.check((b) => b.length === n, `must be ${n} bytes`));

const KdfSchema = v.strictObject({
  name: v.literal('pbkdf2-sha256'),
  iterations: v.pipe(v.number(), v.integer(), v.minValue(PASSPHRASE_KDF.minIterations), v.maxValue(PASSPHRASE_KDF.maxIterations)),
  salt: bin(PASSPHRASE_KDF.saltBytes),
});

const HeaderSchema = v.strictObject({
  kind: v.picklist(['bundle', 'object', 'message']),
  compression: v.picklist(['none', 'deflate']),
  cipher: v.picklist(['none', 'aes-256-gcm']),
  length: v.pipe(v.number(), v.integer(), v.minValue(0)),
  sha256: v.optional(bin(32)),
  iv: v.optional(bin(12)),
  keyId: v.optional(bin(8)),
  kdf: v.optional(KdfSchema),
});
type Header = v.InferOutput<typeof HeaderSchema>;

export interface EncodeOptions {
  kind: PayloadKind;
  /** Compress when it makes the payload smaller. */
  compress?: boolean;
  keys?: SessionKeys;
  /** Encrypt with a key derived from this passphrase (PBKDF2-SHA256, a fresh salt); instead of `keys`. */
  passphrase?: string;
  /** Extra data the cipher binds the body to (e.g. a sealed object's remote id). */
  aad?: Uint8Array;
}

/** How a container is protected, read from its header alone: what an app says about a file before opening it. */
export type Protection = 'none' | 'passphrase' | 'session-key';

const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

/** The keys a passphrase gives with this salt and iteration count (the same derivation as a session key's after it). */
async function passphraseKeys(passphrase: string, kdf: v.InferOutput<typeof KdfSchema>): Promise<SessionKeys> {
  if (passphrase.length === 0) throw new FerryError('snapshot/bad-passphrase', 'The passphrase is empty; type one (a few words make a good one).');
  const base = await globalThis.crypto.subtle.importKey('raw', utf8(passphrase.normalize('NFC')), 'PBKDF2', false, ['deriveBits']);
  const bits = await globalThis.crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: kdf.salt as Uint8Array<ArrayBuffer>, iterations: kdf.iterations }, base, 256);
  return deriveSessionKeys(new Uint8Array(bits));
}

const bad = (what: string, details?: Record<string, unknown>): FerryError =>
  new FerryError('snapshot/bad-container', `${what}; the file or message is damaged or not a Ferry snapshot.`, details ? { details } : {});

export async function encodeContainer(payload: Uint8Array, opts: EncodeOptions): Promise<Uint8Array> {
  if (opts.passphrase !== undefined) {
    if (opts.keys) throw new FerryError('snapshot/bad-options', 'A container is encrypted with a session key or a passphrase, not both.');
    const kdf = { name: 'pbkdf2-sha256' as const, iterations: PASSPHRASE_KDF.iterations, salt: globalThis.crypto.getRandomValues(new Uint8Array(PASSPHRASE_KDF.saltBytes)) };
    return encodeSealed(payload, { ...opts, keys: await passphraseKeys(opts.passphrase, kdf) }, kdf);
  }
  return encodeSealed(payload, opts);
}

async function encodeSealed(payload: Uint8Array, opts: EncodeOptions, kdf?: v.InferOutput<typeof KdfSchema>): Promise<Uint8Array> {
  let body = payload;
  let compression: Header['compression'] = 'none';
  if (opts.compress !== false && worthCompressing(payload)) {
    const deflated = deflateSync(payload, { level: 6 });
    if (deflated.length < payload.length) {
      body = deflated;
      compression = 'deflate';
    }
  }
  const header: Header = opts.keys
    ? { kind: opts.kind, compression, cipher: 'aes-256-gcm', length: payload.length, iv: globalThis.crypto.getRandomValues(new Uint8Array(12)), keyId: opts.keys.keyId, ...(kdf ? { kdf } : {}) }
    : { kind: opts.kind, compression, cipher: 'none', length: payload.length, sha256: new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', body as Uint8Array<ArrayBuffer>)) };
  const prefix = writePrefix(encodeCanonical(header), kdf ? PASSPHRASE_CONTAINER_VERSION : CONTAINER_VERSION);
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
  /** For a container protected by a passphrase. */
  passphrase?: string;
  aad?: Uint8Array;
  limits?: ContainerLimits;
}

/** The header, checked (version, bounds, schema, canonical form), and where the body starts. */
function readHeader(bytes: Uint8Array): { header: Header; prefixLength: number } {
  if (bytes.length < PREFIX || !bytesEqual(bytes.subarray(0, MAGIC.length), MAGIC)) throw bad('It does not start with the Ferry magic bytes');
  const version = bytes[MAGIC.length]!;
  if (version !== CONTAINER_VERSION && version !== PASSPHRASE_CONTAINER_VERSION) {
    throw new FerryError('snapshot/bad-version', `This snapshot uses container version ${version}; this Ferry reads versions ${CONTAINER_VERSION} and ${PASSPHRASE_CONTAINER_VERSION}. Update Ferry (or export again from the same version).`, {
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
  if ((version === PASSPHRASE_CONTAINER_VERSION) !== (header.kdf !== undefined)) throw bad(`Its version ${version} does not match how it is protected`);
  return { header, prefixLength: PREFIX + headerLength };
}

/** What a container holds and how it is protected, from its header alone (no key needed). Throws as decode does. */
export function describeContainer(bytes: Uint8Array): { kind: PayloadKind; protection: Protection; length: number } {
  const { header } = readHeader(bytes);
  return { kind: header.kind, protection: header.kdf ? 'passphrase' : header.cipher === 'none' ? 'none' : 'session-key', length: header.length };
}

export async function decodeContainer(bytes: Uint8Array, opts: DecodeOptions): Promise<Uint8Array> {
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const { header, prefixLength } = readHeader(bytes);
  const headerLength = prefixLength - PREFIX;
  if (header.kind !== opts.kind) throw bad(`It holds a ${header.kind}, not a ${opts.kind}`);
  if (header.length > limits.maxPayload) {
    throw new FerryError('snapshot/too-large', `The snapshot claims ${header.length} bytes, over the limit of ${limits.maxPayload}; refusing to load it.`, { details: { length: header.length } });
  }
  let body = bytes.subarray(PREFIX + headerLength);
  if (header.cipher === 'aes-256-gcm') {
    if (!header.iv || !header.keyId || header.sha256) throw bad('Its cipher header is incomplete');
    let keys = opts.keys;
    if (header.kdf) {
      if (opts.passphrase === undefined) throw new FerryError('snapshot/passphrase-required', 'This file is protected by a passphrase; type the passphrase it was exported with.');
      keys = await passphraseKeys(opts.passphrase, header.kdf);
      if (!bytesEqual(header.keyId, keys.keyId)) throw new FerryError('snapshot/wrong-passphrase', 'That is not the passphrase this file was exported with; try again.');
    }
    if (!keys) throw new FerryError('snapshot/key-required', 'This snapshot is encrypted; open it with its session key (the #fragment of the share link).');
    if (!bytesEqual(header.keyId, keys.keyId)) throw new FerryError('snapshot/wrong-key', 'This snapshot was encrypted with a different session key; check the link or key you used.');
    try {
      body = new Uint8Array(
        await globalThis.crypto.subtle.decrypt({ name: 'AES-GCM', iv: header.iv as Uint8Array<ArrayBuffer>, additionalData: concat(bytes.subarray(0, PREFIX + headerLength), opts.aad ?? new Uint8Array(0)) }, keys.encrypt, body as Uint8Array<ArrayBuffer>),
      );
    } catch (cause) {
      throw new FerryError('snapshot/auth-failed', 'The encrypted snapshot failed authentication: it was altered or truncated after it was written. Fetch it again.', { cause });
    }
  } else {
    if (!header.sha256 || header.iv || header.keyId || header.kdf) throw bad('Its plain header is incomplete');
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
 * few percent of the full cost) and skip compression when they gain under 10%. A small payload is judged by its
 * byte entropy instead — a deflate call costs ~0.1 ms whatever its size, and a session's objects are mostly small —
 * and one under 256 bytes (a chunk list, a head) is sent as it is: there is too little to gain.
 */
function worthCompressing(payload: Uint8Array): boolean {
  if (payload.length < 256) return false;
  if (payload.length <= 4096) return entropyBits(payload) < 0.9 * 8 * payload.length;
  const SAMPLE = Math.min(64 * 1024, Math.max(1024, payload.length >> 6));
  const at = [0, Math.floor((payload.length - SAMPLE) / 2), payload.length - SAMPLE];
  const sample = new Uint8Array(3 * SAMPLE);
  at.forEach((start, i) => sample.set(payload.subarray(start, start + SAMPLE), i * SAMPLE));
  // A small hash table (mem 4): fflate's default sizes one for the whole payload, which costs more than the sample.
  return deflateSync(sample, { level: 1, mem: 4 }).length < sample.length * 0.9;
}

/** The order-0 entropy of `bytes` in bits: a bound on what coding its bytes alone can save. */
function entropyBits(bytes: Uint8Array): number {
  const counts = new Uint32Array(256);
  for (let i = 0; i < bytes.length; i++) counts[bytes[i]!]!++;
  let bits = 0;
  for (let b = 0; b < 256; b++) {
    const c = counts[b]!;
    if (c > 0) bits -= c * Math.log2(c / bytes.length);
  }
  return bits;
}

/** Inflates into a buffer one byte longer than promised, so an over-long stream is caught without growing memory. */
function inflateExactly(body: Uint8Array, length: number): Uint8Array {
  try {
    return inflateSync(body, { out: new Uint8Array(length + 1) });
  } catch (cause) {
    throw new FerryError('snapshot/bad-container', 'The snapshot body does not decompress; it is damaged.', { cause });
  }
}

function writePrefix(header: Uint8Array, version: number): Uint8Array {
  const out = new Uint8Array(PREFIX + header.length);
  out.set(MAGIC);
  out[MAGIC.length] = version;
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
