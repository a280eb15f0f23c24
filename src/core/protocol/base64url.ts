/** base64url without padding (RFC 4648 §5): keys in link fragments, bitmaps in JSON. */
import { FerryError, type ErrorCode } from '../errors.ts';

export function toBase64Url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export function fromBase64Url(text: string, code: ErrorCode = 'protocol/bad-base64'): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) throw new FerryError(code, 'The text is not base64url; it was damaged or cut short.');
  const bin = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  // A plain loop: Uint8Array.from with a map function costs ~20 times as much per byte (sealed objects come this way).
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Bit i (LSB first within each byte) set when `flags[i]`; ceil(n/8) bytes, base64url. */
export function encodeBitmap(flags: readonly boolean[]): string {
  const bytes = new Uint8Array(Math.ceil(flags.length / 8));
  flags.forEach((f, i) => {
    if (f) bytes[i >> 3]! |= 1 << (i & 7);
  });
  return toBase64Url(bytes);
}

export function decodeBitmap(text: string, n: number, code: ErrorCode): boolean[] {
  const bytes = fromBase64Url(text, code);
  if (bytes.length !== Math.ceil(n / 8)) throw new FerryError(code, `A bitmap for ${n} ids must be ${Math.ceil(n / 8)} bytes, not ${bytes.length}.`);
  return Array.from({ length: n }, (_, i) => (bytes[i >> 3]! & (1 << (i & 7))) !== 0);
}
