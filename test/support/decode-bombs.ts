/**
 * Small `.ferry` files that claim far more memory than they hold (the hostile set of the security review): deeply
 * nested array headers, nested arrays padded with nils, a map that claims millions of entries, a body of zeros that
 * inflates 1000:1, and a session bundle whose one object is a nesting bomb. Shared by the decode-bomb test and
 * `npm run bench -- security`.
 *
 * Run as a script, `node --import tsx test/support/decode-bombs.ts <file> <limit MiB>` imports one bomb file with that
 * declared payload limit and prints one JSON line: the typed error it ended in and the process's peak memory growth
 * while decoding it. A fresh process per bomb, so each peak is its own (and a caller can cap the process's heap).
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { isFerryError } from '../../src/core/errors.ts';
import { encodeCanonical } from '../../src/core/session/index.ts';
import { encodeContainer, importSession } from '../../src/core/snapshot/index.ts';
import { createMemoryStore, objectId } from '../../src/core/store/index.ts';

export interface DecodeBomb {
  name: string;
  file: Uint8Array;
}

/** `count` repetitions of `unit`. */
function repeat(unit: readonly number[], count: number, tail: readonly number[] = []): Uint8Array {
  const out = new Uint8Array(unit.length * count + tail.length);
  for (let i = 0; i < count; i++) out.set(unit, i * unit.length);
  out.set(tail, unit.length * count);
  return out;
}

/** A bundle container around `payload` (compressed where that makes it smaller, as every export is). */
const bundle = (payload: Uint8Array): Promise<Uint8Array> => encodeContainer(payload, { kind: 'bundle' });

export async function decodeBombs(): Promise<DecodeBomb[]> {
  // 2,000 array32 headers, each claiming 2^20 items: 9.9 KB that a pre-sizing decoder turns into GBs.
  const nested = repeat([0xdd, 0x00, 0x10, 0x00, 0x00], 1990);
  // 50,000 nested array32 headers claiming 2^20 items, padded with nils.
  const nils = repeat([0xdd, 0x00, 0x10, 0x00, 0x00, 0xc0], 43_000);
  // One map32 claiming 2^31 entries, then nils.
  const map = repeat([0xc0], 100_000);
  map.set([0xdf, 0x80, 0x00, 0x00, 0x00]);
  // A well-formed bundle whose single object is itself a nesting bomb (decoded again when the object is read).
  const inner = repeat([0x91], 100_000, [0xc0]);
  const wrapped = encodeCanonical({ v: 1, session: '0'.repeat(32), refs: [[`sessions/${'0'.repeat(32)}/head`, await objectId(inner)]], objects: [inner] });
  return [
    { name: 'nested-arrays', file: await bundle(nested) },
    { name: 'nested-nil-arrays', file: await bundle(nils) },
    { name: 'huge-map', file: await bundle(map) },
    { name: 'object-nesting', file: await bundle(wrapped) },
    // 250 MB of zeros: a 250 KB file.
    { name: 'zeros-1000x', file: await bundle(new Uint8Array(250 << 20)) },
  ];
}

export interface BombOutcome {
  name: string;
  fileBytes: number;
  /** The typed error it ended in (null: it imported, which none should). */
  code: string | null;
  limit: string | null;
  /** Growth of the process's peak resident memory while decoding it, MiB. */
  peakMb: number;
}

/** Imports a bomb with `limitBytes` as the declared payload limit (run it in a fresh process for a meaningful peak). */
export async function importBomb(bomb: DecodeBomb, limitBytes: number): Promise<BombOutcome> {
  const before = process.resourceUsage().maxRSS;
  let code: string | null = null;
  let limit: string | null = null;
  try {
    await importSession(createMemoryStore(), bomb.file, { limits: { maxPayload: limitBytes } });
  } catch (err) {
    if (!isFerryError(err)) throw err;
    code = err.code;
    limit = typeof err.details?.limit === 'string' ? err.details.limit : null;
  }
  return { name: bomb.name, fileBytes: bomb.file.length, code, limit, peakMb: (process.resourceUsage().maxRSS - before) / 1024 };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, limitMiB] = process.argv.slice(2);
  const bytes = new Uint8Array(await readFile(file!));
  console.log(JSON.stringify(await importBomb({ name: file!, file: bytes }, Number(limitMiB) * (1 << 20))));
}
