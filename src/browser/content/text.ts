/**
 * Bytes as text, or why they are not: UTF-8 (a BOM dropped), or the charset a web server named; anything with a
 * NUL byte or that is not valid in its encoding is taken for a binary file and refused, never shown as mojibake.
 */

/** How far into a file a NUL byte marks it as binary (as git and grep decide). */
const SNIFF_BYTES = 8000;

export type Decoded = { ok: true; text: string } | { ok: false; reason: string };

export function decodeText(bytes: Uint8Array, charset?: string): Decoded {
  if (bytes.subarray(0, SNIFF_BYTES).includes(0)) return { ok: false, reason: 'a binary file (it holds NUL bytes), not text' };
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset ?? 'utf-8', { fatal: true });
  } catch {
    return { ok: false, reason: `written in the "${charset}" character set, which this browser cannot read` };
  }
  try {
    return { ok: true, text: decoder.decode(bytes) };
  } catch {
    return { ok: false, reason: charset ? `not valid ${charset} text` : 'not UTF-8 text (a binary file, or another character set)' };
  }
}
