import { FerryError } from '../errors.ts';
import type { ObjectId } from './types.ts';

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const ID_PATTERN = /^[0-9a-f]{64}$/;

export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += HEX[b];
  return out;
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) {
    throw new FerryError('store/bad-hex', `"${hex.slice(0, 80)}" is not lower-case hex; ids and keys are written as lower-case hex.`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function isObjectId(value: unknown): value is ObjectId {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

export function assertObjectId(value: unknown, what = 'object id'): asserts value is ObjectId {
  if (!isObjectId(value)) {
    throw new FerryError('store/bad-id', `Invalid ${what} ${JSON.stringify(String(value).slice(0, 80))}: expected 64 lower-case hex characters (a SHA-256).`);
  }
}

/**
 * Ids this realm computed, by the byte array they were computed from: a store's commit checks an object's id against
 * its bytes, and most objects reach it straight from being hashed here (a checkpoint's pages, an opened sealed
 * object), so the check need not hash them twice. Objects are immutable once hashed (content addressing); bytes
 * from anywhere else — a file, the network — are hashed in full.
 */
const hashed = new WeakMap<Uint8Array, ObjectId>();

/** The object id of `bytes`: SHA-256 via WebCrypto (works in pages, workers and Node). */
export async function objectId(bytes: Uint8Array): Promise<ObjectId> {
  const id = toHex(new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)));
  hashed.set(bytes, id);
  return id;
}

/** Whether `bytes` hash to `id`: without hashing again when this realm computed their id already. */
export async function hashesTo(bytes: Uint8Array, id: ObjectId): Promise<boolean> {
  return (hashed.get(bytes) ?? (await objectId(bytes))) === id;
}
