import { Decoder, Encoder } from '@msgpack/msgpack';
import { FerryError, type ErrorCode } from '../errors.ts';
import { checkMsgpackBounds } from './msgpack-bounds.ts';

/**
 * Canonical MessagePack: map keys sorted, integers in their shortest form, no undefined. Two equal values always
 * encode to the same bytes, so an object's SHA-256 is a stable id.
 */
const encoder = new Encoder({ sortKeys: true, ignoreUndefined: true, forceFloat32: false, forceIntegerToFloat: false });

/** Decoder limits bound the memory one hostile object can claim before validation even starts. */
const decoder = new Decoder({
  maxStrLength: 16 << 20,
  maxBinLength: 64 << 20,
  maxArrayLength: 1 << 20,
  maxMapLength: 4096,
  maxExtLength: 0,
});

export function encodeCanonical(value: unknown): Uint8Array {
  return encoder.encode(value);
}

/**
 * Decodes one MessagePack value; any malformed input becomes `code` with the given context. The bounds are checked
 * first, so hostile input is refused before the decoder allocates anything for it (msgpack-bounds.ts).
 */
export function decodeMsgpack(bytes: Uint8Array, code: ErrorCode, what: string): unknown {
  checkMsgpackBounds(bytes, code, what);
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    throw new FerryError(code, `${what} is not valid MessagePack (${cause instanceof Error ? cause.message : String(cause)}); the data is damaged or not Ferry data.`, { cause });
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
