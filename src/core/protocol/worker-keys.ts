/**
 * A worker's key pair, so a session key reaches only the worker that runs the session (DESIGN §9 "Keys and
 * members"). Each worker — the relay's embedded one, a `ferry worker`, a browser offering itself as a node — makes
 * an ECDH P-256 key pair when it starts (the private half never leaves its memory) and announces the public half
 * when it attaches. Whoever starts a run seals the session key to the public key of each worker that may run it
 * (ECIES: an ephemeral ECDH key, HKDF-SHA256, AES-256-GCM, bound to the snapshot it is for); the relay routes the
 * sealed bytes and cannot open them.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';
import { concatBytes } from './bytes.ts';

const CURVE = { name: 'ECDH', namedCurve: 'P-256' } as const;
const POINT_BYTES = 65;
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BOX_VERSION = 1;
const BOX_BYTES = 1 + POINT_BYTES + IV_BYTES + KEY_BYTES + TAG_BYTES;

/** A worker's public key: an uncompressed P-256 point, base64url (87 characters). */
export const WorkerPublicKeySchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{87}$/, 'must be a P-256 public key as 87 base64url characters'));

/** A session key sealed to one worker's public key, base64url (168 characters). */
export const SealedKeySchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{168}$/, 'must be a sealed session key as 168 base64url characters'));

export interface WorkerKeys {
  /** What the worker announces when it attaches. */
  readonly publicKey: string;
  /** Opens a session key sealed to this worker for `context`; a typed error when it was sealed to another. */
  open(sealed: string, context: string): Promise<Uint8Array>;
}

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;
const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

/** The AES key both sides derive from the ECDH secret, bound to both public keys. */
async function boxKey(shared: ArrayBuffer, ephemeral: Uint8Array, recipient: Uint8Array, usage: KeyUsage): Promise<CryptoKey> {
  const master = await subtle().importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return subtle().deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: concatBytes(ephemeral, recipient), info: utf8('ferry/sealed-session-key/v1') }, master, { name: 'AES-GCM', length: 256 }, false, [usage]);
}

export async function createWorkerKeys(): Promise<WorkerKeys> {
  const pair = await subtle().generateKey(CURVE, false, ['deriveBits']);
  const own = new Uint8Array(await subtle().exportKey('raw', pair.publicKey));
  return {
    publicKey: toBase64Url(own),
    async open(sealed, context) {
      const box = fromBase64Url(sealed, 'relay/bad-sealed-key');
      if (box.length !== BOX_BYTES || box[0] !== BOX_VERSION) throw new FerryError('relay/bad-sealed-key', 'The sealed session key is malformed; start the run again.');
      const ephemeral = box.subarray(1, 1 + POINT_BYTES);
      const iv = box.subarray(1 + POINT_BYTES, 1 + POINT_BYTES + IV_BYTES);
      try {
        const theirs = await subtle().importKey('raw', ephemeral as Uint8Array<ArrayBuffer>, CURVE, false, []);
        const shared = await subtle().deriveBits({ name: 'ECDH', public: theirs }, pair.privateKey, 256);
        const key = await boxKey(shared, ephemeral, own, 'decrypt');
        return new Uint8Array(await subtle().decrypt({ name: 'AES-GCM', iv: iv as Uint8Array<ArrayBuffer>, additionalData: utf8(context) }, key, box.subarray(1 + POINT_BYTES + IV_BYTES) as Uint8Array<ArrayBuffer>));
      } catch (cause) {
        throw new FerryError('relay/bad-sealed-key', 'The session key was not sealed to this worker for this session; it cannot run it. Start the run again.', { cause });
      }
    },
  };
}

/** Seals `key` (a session key) to the worker whose public key is `publicKey`, for `context` (the snapshot id). */
export async function sealKeyTo(publicKey: string, key: Uint8Array, context: string): Promise<string> {
  const recipient = fromBase64Url(publicKey, 'relay/bad-worker-key');
  let theirs: CryptoKey;
  try {
    theirs = await subtle().importKey('raw', recipient as Uint8Array<ArrayBuffer>, CURVE, false, []);
  } catch (cause) {
    throw new FerryError('relay/bad-worker-key', 'A worker announced a public key that is not a P-256 point; list the workers again.', { cause });
  }
  const ephemeral = await subtle().generateKey(CURVE, false, ['deriveBits']);
  const ephemeralRaw = new Uint8Array(await subtle().exportKey('raw', ephemeral.publicKey));
  const shared = await subtle().deriveBits({ name: 'ECDH', public: theirs }, ephemeral.privateKey, 256);
  const aes = await boxKey(shared, ephemeralRaw, recipient, 'encrypt');
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const sealed = new Uint8Array(await subtle().encrypt({ name: 'AES-GCM', iv, additionalData: utf8(context) }, aes, key as Uint8Array<ArrayBuffer>));
  return toBase64Url(concatBytes(Uint8Array.of(BOX_VERSION), ephemeralRaw, iv, sealed));
}
