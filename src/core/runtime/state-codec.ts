/**
 * How a component's state is stored (issue 4): a keyframe — the pages that differ from a fresh instance of the
 * component — then one small delta per step — the pages that differ from the previous step. A changed page is
 * stored as its changed runs of words (offset, length, new bytes); a blob's runs are kept together, as they are
 * when small, deflated when larger (version 3; version 2 deflated them always, version 1 each page's on its own: both
 * still read): a step changes a few hundred bytes spread over a handful of 64 KiB pages, so a delta is ~2–3 KB where
 * the raw pages were ~300 KB, and decoding it never inflates 64 KiB of zeros. Restore = a fresh instance + the keyframe + the
 * deltas after it, in order (checkpoint.ts bounds the chain). A keyframe names a fingerprint of the fresh image it was taken against, so a
 * restore into a build whose fresh state differs is refused rather than corrupted.
 *
 * A blob is versioned canonical MessagePack; decoding validates every field and bound before anything is
 * allocated from it, because blobs come back from stores, files and other devices.
 */
import { deflateSync, inflateSync } from 'fflate';
import { FerryError } from '../errors.ts';
import { decodeMsgpack, encodeCanonical } from '../session/canonical.ts';
import { PAGE_SIZE, type GlobalValue, type StateDelta, type StateImage } from './image.ts';

export const STATE_FORMAT = 'ferry-state';
export const STATE_VERSION = 3;
/** 4 GiB: the most a 32-bit wasm memory can hold. */
const MAX_MEMORY_BYTES = 65_536 * PAGE_SIZE;
/** Deflate level 1: XOR pages are mostly zeros, where higher levels gain almost nothing and cost time. */
const LEVEL = 1;
/**
 * Runs up to this many bytes are stored as they are. A restore is what a person waits for, and inflating costs it
 * ~0.03–0.1 ms a blob (fflate builds its code tables anew) plus ~5 ns a byte in a browser, against the ~60% of bytes
 * deflate saves: worth it only for the large keyframes of much state.
 */
const RAW_RUNS_MAX = 65536;

const enum Mode {
  /** The page is all zero. */
  Zero = 0,
  /** Runs of changed words against the same page before (absent = all zero). */
  Runs = 3,
}
/** Runs closer than this many words are merged: fewer headers, a little more data. */
const MERGE_GAP_WORDS = 4;

/**
 * A page: its runs body's byte length within the blob's `runs` (version 2), or the body deflated on its own
 * (version 1); null for a zero page.
 */
type PageEntry = [index: number, mode: Mode, runs: number | Uint8Array | null];

interface StateBlob {
  f: typeof STATE_FORMAT;
  v: 1 | 2 | 3;
  kind: 'key' | 'delta';
  component: string;
  /** Names the keyframe a delta applies to (the keyframe's own nonce). */
  chain: string;
  /** 0 for a keyframe; deltas count 1, 2, … after it. */
  seq: number;
  /** Keyframes: fingerprint of the fresh image the pages are relative to. */
  base?: string;
  /** Components exporting the `state` interface: their own snapshot, the whole state (no pages then). */
  snapshot?: Uint8Array;
  memories: { key: string; size: number; pages: PageEntry[] }[];
  /** Every page's runs body, in the order the pages are listed: as they are (version 3), or deflated (version 2). */
  runs?: Uint8Array;
  /** Version 3: the runs deflated, where they are larger than RAW_RUNS_MAX. */
  deflated?: Uint8Array;
  globals: { key: string; n?: number; i64?: string }[];
}

export interface BlobHeader {
  kind: 'key' | 'delta';
  component: string;
  chain: string;
  seq: number;
}

/** A keyframe: every page of `image` that differs from `base` (the component's fresh image), as changed runs. */
export function encodeKeyframe(image: StateImage, base: StateImage, chain: string): Uint8Array {
  if (image.component !== base.component || image.memories.length !== base.memories.length || image.memories.some((m, i) => m.key !== base.memories[i]!.key)) {
    throw bad('the base image is of another component or layout');
  }
  const runs = new RunsWriter();
  const memories = image.memories.map((m, n) => {
    const before = base.memories[n]!;
    const indexes = [...new Set([...m.pages.keys(), ...before.pages.keys()])].sort((a, b) => a - b);
    const pages: PageEntry[] = [];
    for (const i of indexes) {
      const page = m.pages.get(i);
      const old = before.pages.get(i);
      if (page === old) continue;
      if (!page) pages.push([i, Mode.Zero, null]);
      else if (!old || !sameWords(page, old)) pages.push([i, Mode.Runs, runs.add(page, old)]);
    }
    return { key: m.key, size: m.byteLength, pages };
  });
  return encodeCanonical({
    f: STATE_FORMAT,
    v: STATE_VERSION,
    kind: 'key',
    component: image.component,
    chain,
    seq: 0,
    base: fingerprint(base),
    memories,
    ...runs.field(),
    globals: encodeGlobals(image.globals),
  } satisfies StateBlob);
}

/** A delta: each changed page as its changed runs against its previous version. */
export function encodeDelta(delta: StateDelta, chain: string, seq: number): Uint8Array {
  const runs = new RunsWriter();
  const memories = delta.memories.map((m) => ({
    key: m.key,
    size: m.byteLength,
    pages: [...m.pages].sort((a, b) => a[0] - b[0]).map(([i, page]): PageEntry => (page === null ? [i, Mode.Zero, null] : [i, Mode.Runs, runs.add(page, m.before.get(i))])),
  }));
  return encodeCanonical({
    f: STATE_FORMAT,
    v: STATE_VERSION,
    kind: 'delta',
    component: delta.component,
    chain,
    seq,
    memories,
    ...runs.field(),
    globals: encodeGlobals(delta.globals),
  } satisfies StateBlob);
}

/**
 * A component's own snapshot (the `state` interface) as a chain blob: the whole state each time, so the newest
 * blob of a chain is all a restore needs; the chain numbering is kept so checkpoint.ts treats every component alike.
 */
export function encodeSnapshot(component: string, chain: string, seq: number, snapshot: Uint8Array): Uint8Array {
  return encodeCanonical({ f: STATE_FORMAT, v: STATE_VERSION, kind: seq === 0 ? 'key' : 'delta', component, chain, seq, memories: [], globals: [], snapshot } satisfies StateBlob);
}

/** The snapshot a chain of snapshot blobs ends with, or undefined when the chain holds memory images. */
export function snapshotOf(blobs: readonly Uint8Array[]): Uint8Array | undefined {
  const decoded = blobs.map(decodeBlob);
  const first = decoded[0];
  if (!first || first.kind !== 'key') throw bad('a state chain must start with a keyframe');
  if (first.snapshot === undefined) return undefined;
  decoded.forEach((blob, n) => {
    if (blob.snapshot === undefined || blob.component !== first.component || blob.chain !== first.chain || blob.seq !== n) throw bad(`blob ${n} of a snapshot chain is out of place`);
  });
  return decoded.at(-1)!.snapshot;
}

/** True when a delta changes nothing (no pages; globals are compared by the caller, who has the previous ones). */
export function deltaIsEmpty(delta: StateDelta): boolean {
  return delta.memories.every((m) => m.pages.size === 0);
}

/** The header of a blob, validated. */
export function blobHeader(bytes: Uint8Array): BlobHeader {
  const { kind, component, chain, seq } = decodeBlob(bytes);
  return { kind, component, chain, seq };
}

/**
 * Rebuilds an image from a keyframe and the deltas after it, in order, on top of `base` — the fresh image of the
 * component (a fresh instance's `initial()`). Every blob must belong to the same component and chain, with
 * consecutive sequence numbers, and the keyframe to this fresh image: anything else is refused, never half-applied.
 */
export function decodeChain(blobs: readonly Uint8Array[], base: StateImage): StateImage {
  const [first, ...rest] = blobs.map(decodeBlob);
  if (!first || first.kind !== 'key') throw bad('a state chain must start with a keyframe');
  if (first.component !== base.component) throw bad(`the state is of component ${first.component}, not ${base.component}`);
  if (first.base !== fingerprint(base)) {
    throw new FerryError('runtime/base-mismatch', 'The fresh state of this component differs from the one the checkpoint was taken against (another build, or a non-deterministic start); it cannot be restored here.');
  }
  // Pages copied during this decode are written in place by later deltas: one copy per page, not per delta.
  const owned = new Set<Uint8Array>();
  let image = applyBlob(base, first, owned);
  rest.forEach((blob, n) => {
    if (blob.kind !== 'delta' || blob.component !== first.component || blob.chain !== first.chain || blob.seq !== n + 1) {
      throw bad(`blob ${n + 1} of the chain is not delta ${n + 1} of keyframe ${first.chain} for this component`);
    }
    image = applyBlob(image, blob, owned);
  });
  return image;
}

function applyBlob(image: StateImage, blob: StateBlob, owned: Set<Uint8Array>): StateImage {
  if (blob.memories.length !== image.memories.length || blob.memories.some((m, i) => m.key !== image.memories[i]!.key)) {
    throw bad('a delta lists other memories than its keyframe');
  }
  const runs = blobRuns(blob);
  let at = 0;
  return {
    component: image.component,
    memories: image.memories.map((memory, m) => {
      const change = blob.memories[m]!;
      if (change.size < memory.byteLength) throw bad(`memory ${memory.key} shrinks in a delta; wasm memories never shrink`);
      const pages = new Map(memory.pages);
      for (const [i, mode, entry] of change.pages) {
        if (mode === Mode.Zero) {
          pages.delete(i);
          continue;
        }
        let body: Uint32Array;
        if (typeof entry === 'number') {
          body = new Uint32Array(runs!.buffer, runs!.byteOffset + at, entry / 4);
          at += entry;
        } else {
          body = inflateRuns(entry!);
        }
        const page = applyRuns(body, memory.pages.get(i), owned);
        owned.add(page);
        pages.set(i, page);
      }
      return { key: memory.key, byteLength: change.size, pages };
    }),
    globals: decodeGlobals(blob.globals),
  };
}

/** The runs bodies of a blob's pages, collected in page order and deflated together (version 2). */
class RunsWriter {
  readonly #bodies: Uint32Array[] = [];

  /** Adds the runs of `page` against `before`; returns the body's length in bytes (its page entry). */
  add(page: Uint8Array, before: Uint8Array | undefined): number {
    const body = runsOf(page, before);
    this.#bodies.push(body);
    return body.byteLength;
  }

  /** The blob's `runs` or `deflated` field: neither when no page has runs. */
  field(): { runs?: Uint8Array; deflated?: Uint8Array } {
    if (this.#bodies.length === 0) return {};
    const all = new Uint8Array(this.#bodies.reduce((n, b) => n + b.byteLength, 0));
    let at = 0;
    for (const b of this.#bodies) {
      all.set(new Uint8Array(b.buffer, b.byteOffset, b.byteLength), at);
      at += b.byteLength;
    }
    return all.length <= RAW_RUNS_MAX ? { runs: all } : { deflated: deflateSync(all, { level: LEVEL }) };
  }
}

/** Changed words of `page` against `before` as runs: [u32 count][u32 offset, u32 length]… then the runs' bytes. */
function runsOf(page: Uint8Array, before: Uint8Array | undefined): Uint32Array {
  const now = words(page);
  const old = before ? words(before) : undefined;
  const runs: [number, number][] = [];
  let start = -1;
  let lastChanged = -1;
  for (let i = 0; i < now.length; i++) {
    if (now[i] === (old ? old[i] : 0)) continue;
    if (start >= 0 && i - lastChanged <= MERGE_GAP_WORDS) {
      lastChanged = i;
      continue;
    }
    if (start >= 0) runs.push([start, lastChanged + 1 - start]);
    start = i;
    lastChanged = i;
  }
  if (start >= 0) runs.push([start, lastChanged + 1 - start]);
  const dataWords = runs.reduce((n, [, len]) => n + len, 0);
  const body = new Uint32Array(1 + 2 * runs.length + dataWords);
  body[0] = runs.length;
  let at = 1 + 2 * runs.length;
  runs.forEach(([offset, len], r) => {
    body[1 + 2 * r] = offset * 4;
    body[2 + 2 * r] = len * 4;
    body.set(now.subarray(offset, offset + len), at);
    at += len;
  });
  return body;
}

/** The largest runs body a page can have: every other word changed, after merging. */
const MAX_RUNS_BODY = 4 + PAGE_SIZE * 2 + 64;

/**
 * A blob's runs (versions 2 and 3), exactly as many bytes as its pages say, in a buffer of their own (word-aligned).
 * A deflated stream inflates into a buffer one byte longer, so an over-long stream is caught without growing memory.
 */
function blobRuns(blob: StateBlob): Uint8Array | undefined {
  const stored = blob.v === 2 ? undefined : blob.runs;
  const deflated = blob.v === 2 ? blob.runs : blob.deflated;
  if (!stored && !deflated) return undefined;
  const total = blob.memories.reduce((n, m) => m.pages.reduce((k, [, , entry]) => k + (typeof entry === 'number' ? entry : 0), n), 0);
  if (stored) {
    if (stored.length !== total) throw bad(`its runs are ${stored.length} bytes, its pages say ${total}`);
    return stored.slice();
  }
  // Deflate expands at most ~1032:1: a larger claim is refused before any memory is spent on it.
  if (total > deflated!.length * 1032 + 64) throw bad(`its pages claim ${total} bytes of runs from a ${deflated!.length}-byte stream`);
  let body: Uint8Array;
  try {
    body = inflateSync(deflated!, { out: new Uint8Array(total + 1) });
  } catch (cause) {
    throw bad('its runs do not inflate', cause);
  }
  if (body.length !== total) throw bad(`its runs inflate to ${body.length} bytes, its pages say ${total}`);
  return body;
}

/**
 * One scratch buffer for every version 1 page inflated: a runs body is consumed (applyRuns) before the next page is
 * inflated, and decoding is synchronous, so reusing it saves allocating and zeroing ~128 KiB per page restored.
 */
let scratch: Uint8Array | undefined;

/** A view of a version 1 page's inflated runs body, valid until the next call. */
function inflateRuns(bytes: Uint8Array): Uint32Array {
  // Inflating into a bounded buffer caps what a hostile blob can make us allocate.
  scratch ??= new Uint8Array(MAX_RUNS_BODY + 4);
  let body: Uint8Array;
  try {
    body = inflateSync(bytes, { out: scratch });
  } catch (cause) {
    throw bad('a page does not inflate', cause);
  }
  if (body.length > MAX_RUNS_BODY || body.length % 4 !== 0 || body.length < 4) throw bad(`a page's runs inflate to ${body.length} bytes`);
  return new Uint32Array(body.buffer, body.byteOffset, body.length / 4);
}

/** `before` (or zeros) with the runs written over it; every offset and length is checked against the page. */
function applyRuns(body: Uint32Array, before: Uint8Array | undefined, owned: ReadonlySet<Uint8Array>): Uint8Array {
  const page = before ? (owned.has(before) ? before : before.slice()) : new Uint8Array(PAGE_SIZE);
  const out = words(page);
  const count = body[0]!;
  let at = 1 + 2 * count;
  if (at > body.length) throw bad('a page lists more runs than it carries');
  let end = 0;
  for (let r = 0; r < count; r++) {
    const offset = body[1 + 2 * r]!;
    const length = body[2 + 2 * r]!;
    if (offset % 4 !== 0 || length % 4 !== 0 || length === 0 || offset < end || offset + length > PAGE_SIZE || at + length / 4 > body.length) {
      throw bad('a page has a run outside the page, out of order, or longer than its data');
    }
    out.set(body.subarray(at, at + length / 4), offset / 4);
    at += length / 4;
    end = offset + length;
  }
  if (at !== body.length) throw bad('a page carries bytes after its last run');
  return page;
}

function words(page: Uint8Array): Uint32Array {
  return new Uint32Array(page.buffer, page.byteOffset, PAGE_SIZE / 4);
}

function sameWords(a: Uint8Array, b: Uint8Array): boolean {
  const x = words(a);
  const y = words(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** Fingerprints by fresh image: an instance's fresh image never changes, and every keyframe and restore asks for it. */
const fingerprints = new WeakMap<StateImage, string>();
/**
 * The last fresh image hashed per component, and its fingerprint: every instance of a build starts the same (a restore
 * checks just that), and comparing an image with one known is cheaper than hashing it.
 */
const lastHashed = new Map<string, { image: StateImage; fingerprint: string }>();
/** Components whose last fresh image is kept (the least recently hashed goes first): each holds its fresh pages. */
const LAST_HASHED_MAX = 32;

/**
 * A fast fingerprint (FNV-1a over the words) of a fresh image: a consistency check that a keyframe lands on the
 * fresh state it was taken against, not a security boundary (blobs are content-addressed in the store). The image
 * must not change afterwards (a fresh image never does): the fingerprint is computed once per image, and not at all
 * for an image equal to the component's last one hashed.
 */
export function fingerprint(image: StateImage): string {
  let known = fingerprints.get(image);
  if (known === undefined) {
    const last = lastHashed.get(image.component);
    known = last && sameImage(image, last.image) ? last.fingerprint : hashImage(image);
    fingerprints.set(image, known);
    lastHashed.delete(image.component);
    lastHashed.set(image.component, { image, fingerprint: known });
    if (lastHashed.size > LAST_HASHED_MAX) lastHashed.delete(lastHashed.keys().next().value!);
  }
  return known;
}

/** Whether two images hold the same memories, page for page (globals do not enter a fingerprint). */
function sameImage(a: StateImage, b: StateImage): boolean {
  if (a.memories.length !== b.memories.length) return false;
  return a.memories.every((m, n) => {
    const other = b.memories[n]!;
    if (m.byteLength !== other.byteLength || m.pages.size !== other.pages.size) return false;
    for (const [i, page] of m.pages) {
      const same = other.pages.get(i);
      if (!same || (same !== page && !sameWords(page, same))) return false;
    }
    return true;
  });
}

function hashImage(image: StateImage): string {
  let h = 0x811c9dc5;
  let pages = 0;
  for (const m of image.memories) {
    h = Math.imul(h ^ (m.byteLength / PAGE_SIZE), 0x01000193);
    for (const i of [...m.pages.keys()].sort((a, b) => a - b)) {
      h = Math.imul(h ^ i, 0x01000193);
      const w = words(m.pages.get(i)!);
      // Two lanes halve the dependency chain; still one pass over the words.
      let h2 = h ^ 0x9e3779b9;
      for (let j = 0; j < w.length; j += 2) {
        h = Math.imul(h ^ w[j]!, 0x01000193);
        h2 = Math.imul(h2 ^ w[j + 1]!, 0x01000193);
      }
      h ^= h2;
      pages++;
    }
  }
  return `fnv1a:${(h >>> 0).toString(16).padStart(8, '0')}:${pages}`;
}

function encodeGlobals(globals: readonly { key: string; value: GlobalValue }[]): StateBlob['globals'] {
  return globals.map((g) => (typeof g.value === 'bigint' ? { key: g.key, i64: g.value.toString() } : { key: g.key, n: g.value }));
}

function decodeGlobals(globals: StateBlob['globals']): { key: string; value: GlobalValue }[] {
  return globals.map((g) => ({ key: g.key, value: g.i64 !== undefined ? BigInt(g.i64) : g.n! }));
}

function decodeBlob(bytes: Uint8Array): StateBlob {
  const data = decodeMsgpack(bytes, 'runtime/bad-state', 'A component state blob');
  if (!isRecord(data) || data.f !== STATE_FORMAT) throw bad('it is not a Ferry component state');
  if (data.v !== 1 && data.v !== 2 && data.v !== 3) throw bad(`version ${JSON.stringify(data.v)} is not supported (this host reads versions 1 to ${STATE_VERSION})`);
  const version = data.v;
  if (data.kind !== 'key' && data.kind !== 'delta') throw bad('kind must be "key" or "delta"');
  if (typeof data.component !== 'string' || typeof data.chain !== 'string' || data.chain.length > 128) throw bad('component and chain must be strings');
  if (!Number.isSafeInteger(data.seq) || (data.seq as number) < 0) throw bad('seq must be a non-negative integer');
  if (!Array.isArray(data.memories) || data.memories.length > 64 || !Array.isArray(data.globals) || data.globals.length > 4096) throw bad('memories and globals must be (bounded) lists');
  let runsPages = 0;
  const memories = data.memories.map((m, j): StateBlob['memories'][number] => {
    if (!isRecord(m) || typeof m.key !== 'string' || !Number.isSafeInteger(m.size) || !Array.isArray(m.pages)) throw bad(`memory ${j} is malformed`);
    const size = m.size as number;
    if (size < 0 || size % PAGE_SIZE !== 0 || size > MAX_MEMORY_BYTES) throw bad(`memory ${m.key} has an invalid size ${size}`);
    const seen = new Set<number>();
    const pages = m.pages.map((p): PageEntry => {
      if (!Array.isArray(p) || p.length !== 3) throw bad(`a page of memory ${m.key} is malformed`);
      const [i, mode, body] = p as unknown[];
      if (!Number.isSafeInteger(i) || (i as number) < 0 || (i as number) * PAGE_SIZE >= size || seen.has(i as number)) throw bad(`memory ${m.key} has an invalid or repeated page index`);
      seen.add(i as number);
      if (mode === Mode.Zero) {
        if (body !== null) throw bad('a zero page carries bytes');
        return [i as number, Mode.Zero, null];
      }
      const valid = version === 1 ? body instanceof Uint8Array : Number.isSafeInteger(body) && (body as number) >= 4 && (body as number) <= MAX_RUNS_BODY && (body as number) % 4 === 0;
      if (mode !== Mode.Runs || !valid) throw bad(`page ${String(i)} of memory ${m.key} has an invalid mode or body`);
      if (version !== 1) runsPages++;
      return [i as number, mode, body as number | Uint8Array];
    });
    return { key: m.key, size, pages };
  });
  const globals = data.globals.map((g): StateBlob['globals'][number] => {
    if (!isRecord(g) || typeof g.key !== 'string') throw bad('a global is malformed');
    if (typeof g.n === 'number' && Number.isFinite(g.n) && g.i64 === undefined) return { key: g.key, n: g.n };
    if (typeof g.i64 === 'string' && /^-?\d{1,20}$/.test(g.i64) && g.n === undefined) return { key: g.key, i64: g.i64 };
    throw bad(`global ${g.key} has no valid value`);
  });
  // One stream of runs exactly when pages have runs: `runs` (deflated in version 2), or `deflated` (version 3).
  const streams = [data.runs, data.deflated].filter((x) => x !== undefined);
  if (streams.some((x) => !(x instanceof Uint8Array)) || streams.length !== (runsPages > 0 ? 1 : 0) || (version === 2 && data.deflated !== undefined)) {
    throw bad('runs must be bytes, in one field, exactly when pages have runs');
  }
  if (data.base !== undefined && typeof data.base !== 'string') throw bad('base must be a string');
  if (data.snapshot !== undefined && !(data.snapshot instanceof Uint8Array)) throw bad('snapshot must be bytes');
  return {
    f: STATE_FORMAT, v: version, kind: data.kind, component: data.component, chain: data.chain, seq: data.seq as number,
    ...(typeof data.base === 'string' ? { base: data.base } : {}),
    ...(data.snapshot instanceof Uint8Array ? { snapshot: data.snapshot } : {}),
    ...(data.runs instanceof Uint8Array ? { runs: data.runs } : {}),
    ...(data.deflated instanceof Uint8Array ? { deflated: data.deflated } : {}),
    memories, globals,
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(why: string, cause?: unknown): FerryError {
  return new FerryError('runtime/bad-state', `A stored component state is invalid: ${why}. The checkpoint is damaged or from an incompatible version; restore an earlier checkpoint.`, {
    ...(cause === undefined ? {} : { cause }),
  });
}
