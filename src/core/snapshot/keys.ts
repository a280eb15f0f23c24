/**
 * Per-session keys (DESIGN §3). The session's random 256-bit key is the only secret; from it HKDF derives a
 * non-extractable AES-GCM key for object contents, an HMAC key that maps local ids to remote ids (so the relay can
 * deduplicate without learning content hashes), and a short key id that tells "wrong key" apart from "tampered".
 */
import { FerryError } from '../errors.ts';
import { cachedPromise } from '../promise-cache.ts';
import { fromHex, toHex, type ObjectId } from '../store/index.ts';

export const SESSION_KEY_BYTES = 32;

export interface SessionKeys {
  readonly encrypt: CryptoKey;
  readonly ids: CryptoKey;
  /** 8 bytes derived from the key; written in every sealed header. */
  readonly keyId: Uint8Array<ArrayBuffer>;
  /**
   * HMAC key over prefix keys (llm/prefix-keys.ts `keyPrefixes`): a node reports the prefixes a session left in its
   * KV cache keyed by it, so only holders of the session key can match them (raw token hashes would fingerprint the
   * prompt for anyone reading the worker list).
   */
  readonly prefixes: CryptoKey;
}

const subtle = (): SubtleCrypto => globalThis.crypto.subtle;
const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

/** A fresh random session key (raw bytes, for a share link's #fragment or the device's key store). */
export function generateSessionKey(): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(SESSION_KEY_BYTES));
}

/** Keys by the key bytes they came from: a move derives them to publish, to start the run and to read its events. */
const derived = new WeakMap<Uint8Array, Promise<SessionKeys>>();

/** The session's keys from its raw key; derived once per key array (which must not change afterwards). */
export function deriveSessionKeys(raw: Uint8Array): Promise<SessionKeys> {
  if (!(raw instanceof Uint8Array) || raw.length !== SESSION_KEY_BYTES) {
    return Promise.reject(new FerryError('snapshot/bad-key', `A session key must be ${SESSION_KEY_BYTES} bytes; got ${raw instanceof Uint8Array ? raw.length : typeof raw}. Check the share link was copied whole.`));
  }
  return cachedPromise(derived, raw, () => derive(raw));
}

async function derive(raw: Uint8Array): Promise<SessionKeys> {
  const master = await subtle().importKey('raw', new Uint8Array(raw), 'HKDF', false, ['deriveKey', 'deriveBits']);
  const hkdf = (info: string): HkdfParams => ({ name: 'HKDF', hash: 'SHA-256', salt: utf8('ferry/session-key/v1'), info: utf8(info) });
  const [encrypt, ids, keyIdBits, prefixes] = await Promise.all([
    subtle().deriveKey(hkdf('object-encryption'), master, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']),
    subtle().deriveKey(hkdf('remote-ids'), master, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign']),
    subtle().deriveBits(hkdf('key-id'), master, 64),
    subtle().deriveKey(hkdf('prefix-keys'), master, { name: 'HMAC', hash: 'SHA-256', length: 256 }, false, ['sign']),
  ]);
  return { encrypt, ids, keyId: new Uint8Array(keyIdBits), prefixes };
}

/** The relay-side id of a local object: HMAC-SHA256(ids key, local id bytes), hex. */
export async function remoteId(keys: SessionKeys, local: ObjectId): Promise<ObjectId> {
  return toHex(new Uint8Array(await subtle().sign('HMAC', keys.ids, fromHex(local) as Uint8Array<ArrayBuffer>)));
}
