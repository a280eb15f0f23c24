/**
 * Transparent state capture (DESIGN.md §4): between two calls a component is quiescent, so its whole state is the
 * contents of its linear memories and the values of its mutable globals. The host reads them from every core
 * instance it created (the build exported every mutable global, scripts/components/export-globals.ts) and cuts
 * memory into 64 KiB pages so a checkpoint holds only the pages a step changed; all-zero pages are never stored.
 */
import { FerryError } from '../errors.ts';

export const PAGE_SIZE = 65_536;

/** A global's value as JS sees it: i32/f32/f64 are numbers, i64 is a bigint. */
export type GlobalValue = number | bigint;

export interface MemoryImage {
  /** Stable name of the memory within the component: "<core instance index>:<export name>". */
  key: string;
  /** The memory's size in bytes (a whole number of pages). */
  byteLength: number;
  /** Page index → its 64 KiB. A page that is not here is all zero. Page buffers are never written after capture. */
  pages: Map<number, Uint8Array>;
}

export interface GlobalImage {
  key: string;
  value: GlobalValue;
}

/** Everything needed to put a fresh instance of `component` into the captured state. */
export interface StateImage {
  /** Id of the component (SHA-256 of its manifest) the image belongs to. */
  component: string;
  memories: MemoryImage[];
  globals: GlobalImage[];
}

/** What changed since the previous image: per memory only the changed pages, `null` where a page became all zero. */
export interface StateDelta {
  component: string;
  /**
   * `before` holds the previous version of each changed page that was not all zero: what an XOR delta is taken
   * against (state-codec.ts). Captured pages are never written, so keeping them costs no copy.
   */
  memories: { key: string; byteLength: number; pages: Map<number, Uint8Array | null>; before: Map<number, Uint8Array> }[];
  /** Globals are a few words each: always all of them. */
  globals: GlobalImage[];
}

/** The memories and mutable globals of a component's core instances, found once after instantiation. */
export interface StateSlots {
  memories: { key: string; memory: WebAssembly.Memory }[];
  globals: { key: string; global: WebAssembly.Global }[];
}

/**
 * Lists every exported memory and mutable global, in instantiation order then export order — the same order for
 * every instance of the same component. A memory or global exported by several instances is listed once.
 */
export function findSlots(cores: readonly WebAssembly.Instance[]): StateSlots {
  const seen = new Set<unknown>();
  const slots: StateSlots = { memories: [], globals: [] };
  cores.forEach((core, i) => {
    for (const [name, value] of Object.entries(core.exports)) {
      if (seen.has(value)) continue;
      seen.add(value);
      if (value instanceof WebAssembly.Memory) slots.memories.push({ key: `${i}:${name}`, memory: value });
      else if (value instanceof WebAssembly.Global && isMutable(value, `${i}:${name}`)) slots.globals.push({ key: `${i}:${name}`, global: value });
    }
  });
  return slots;
}

/** JS has no type reflection for globals yet: writing a global's own value back succeeds only if it is mutable. */
function isMutable(global: WebAssembly.Global, key: string): boolean {
  const value: unknown = global.value;
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    throw new FerryError('component/unsupported-state', `Global ${key} holds a ${typeof value}; only numeric globals can be checkpointed. This component cannot be restored from a memory image.`);
  }
  try {
    global.value = value;
    return true;
  } catch {
    return false;
  }
}

/** A full image: copies of every non-zero page. */
export function captureImage(component: string, slots: StateSlots): StateImage {
  return {
    component,
    memories: slots.memories.map(({ key, memory }) => {
      const bytes = new Uint8Array(memory.buffer);
      const pages = new Map<number, Uint8Array>();
      for (let i = 0; i * PAGE_SIZE < bytes.length; i++) {
        const page = bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
        if (!isZero(page)) pages.set(i, page.slice());
      }
      return { key, byteLength: bytes.length, pages };
    }),
    globals: readGlobals(slots),
  };
}

/**
 * Compares the live state with `base` (the image of the previous checkpoint), returns what changed and updates
 * `base` in place to the live state, so the next call diffs against this one. Only changed pages are copied.
 */
export function diffAndAdvance(base: StateImage, slots: StateSlots): StateDelta {
  assertSameLayout(base, slots);
  const memories = slots.memories.map(({ key, memory }, m) => {
    const baseMemory = base.memories[m]!;
    const bytes = new Uint8Array(memory.buffer);
    const pages = new Map<number, Uint8Array | null>();
    const previous = new Map<number, Uint8Array>();
    for (let i = 0; i * PAGE_SIZE < bytes.length; i++) {
      const page = bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
      const before = baseMemory.pages.get(i);
      if (before ? sameBytes(page, before) : isZero(page)) continue;
      if (before) previous.set(i, before);
      if (before && isZero(page)) {
        pages.set(i, null);
        baseMemory.pages.delete(i);
      } else {
        const copy = page.slice();
        pages.set(i, copy);
        baseMemory.pages.set(i, copy);
      }
    }
    baseMemory.byteLength = bytes.length;
    return { key, byteLength: bytes.length, pages, before: previous };
  });
  const globals = readGlobals(slots);
  base.globals = globals.map((g) => ({ ...g }));
  return { component: base.component, memories, globals };
}

/** The image after `delta`: `base` with the changed pages replaced. Shares unchanged page buffers with `base`. */
export function applyDelta(base: StateImage, delta: StateDelta): StateImage {
  if (delta.component !== base.component || !sameKeys(base.memories, delta.memories) || !sameKeys(base.globals, delta.globals)) {
    throw mismatch('the delta was taken from a different component or layout than the base image');
  }
  return {
    component: base.component,
    memories: base.memories.map((memory, m) => {
      const change = delta.memories[m]!;
      const pages = new Map(memory.pages);
      for (const [i, page] of change.pages) {
        if (page === null) pages.delete(i);
        else pages.set(i, page);
      }
      return { key: memory.key, byteLength: change.byteLength, pages };
    }),
    globals: delta.globals.map((g) => ({ ...g })),
  };
}

/** A copy of the image's structure; the page buffers are shared (pages are never written after capture). */
export function cloneImage(image: StateImage): StateImage {
  return {
    component: image.component,
    memories: image.memories.map((m) => ({ key: m.key, byteLength: m.byteLength, pages: new Map(m.pages) })),
    globals: image.globals.map((g) => ({ ...g })),
  };
}

/**
 * What the instance's memories hold before a restore: `exact`, an image of precisely their state now (a component
 * that has not run since it was captured, restored or instantiated); or `likely`, what they probably hold (the fresh
 * image), which says which of the image's pages are worth comparing before writing: those it shares.
 */
export type Holding = { exact: StateImage } | { likely: StateImage };

/**
 * Writes `image` into the instance: grows each memory to the image's size, zeroes the pages the image does not hold
 * and writes those it does, sets globals. The image is checked whole first, so a bad one changes nothing.
 * Only pages that differ are written: a page the engine never touched reads as zero without being backed by memory,
 * and writing zeros over it commits it (and the collector frees it later). With an `exact` holding nothing is read:
 * a page is written when the image's differs from the holding's (by identity: captured pages are never written).
 */
export function writeImage(image: StateImage, slots: StateSlots, holding?: Holding): void {
  assertSameLayout(image, slots);
  slots.memories.forEach(({ key, memory }, m) => {
    const { byteLength, pages } = image.memories[m]!;
    const current = memory.buffer.byteLength;
    if (byteLength % PAGE_SIZE !== 0 || byteLength < current) {
      throw mismatch(`memory ${key} is ${current} bytes in this instance but ${byteLength} in the image; memories never shrink`);
    }
    for (const [i, page] of pages) {
      if (page.length !== PAGE_SIZE || !Number.isInteger(i) || i < 0 || (i + 1) * PAGE_SIZE > byteLength) throw mismatch(`page ${i} of memory ${key} is out of range or not ${PAGE_SIZE} bytes`);
    }
  });
  slots.globals.forEach(({ key, global }, g) => {
    const { value } = image.globals[g]!;
    if (typeof value !== typeof global.value) throw mismatch(`global ${key} holds a ${typeof global.value}, the image a ${typeof value}`);
  });
  const exact = holding && 'exact' in holding ? holding.exact : undefined;
  slots.memories.forEach(({ memory }, m) => {
    const { byteLength, pages } = image.memories[m]!;
    const current = memory.buffer.byteLength;
    if (byteLength > current) memory.grow((byteLength - current) / PAGE_SIZE);
    const bytes = new Uint8Array(memory.buffer);
    const zero = (i: number) => bytes.fill(0, i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    const held = exact?.memories[m]!.pages ?? (holding && 'likely' in holding ? holding.likely.memories[m]?.pages : undefined);
    if (exact) {
      for (const i of held!.keys()) if (!pages.has(i)) zero(i);
    } else {
      // Pages past the old size are fresh zeros.
      for (let i = 0; i * PAGE_SIZE < current; i++) if (!pages.has(i) && !isZero(bytes.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE))) zero(i);
    }
    for (const [i, page] of pages) {
      const at = i * PAGE_SIZE;
      if (at < current && held?.get(i) === page && (exact || sameBytes(bytes.subarray(at, at + PAGE_SIZE), page))) continue;
      bytes.set(page, at);
    }
  });
  slots.globals.forEach(({ global }, g) => {
    global.value = image.globals[g]!.value;
  });
}

/** Bytes a delta or image carries in pages (what a store would have to write). */
export function pageBytes(image: { memories: { pages: Map<number, Uint8Array | null> }[] }): number {
  let n = 0;
  for (const m of image.memories) for (const page of m.pages.values()) n += page?.length ?? 0;
  return n;
}

function readGlobals(slots: StateSlots): GlobalImage[] {
  return slots.globals.map(({ key, global }) => ({ key, value: global.value as GlobalValue }));
}

function assertSameLayout(image: StateImage, slots: StateSlots): void {
  if (!sameKeys(image.memories, slots.memories) || !sameKeys(image.globals, slots.globals)) {
    throw mismatch('its memories and globals do not match this instance (an image of another build of the component?)');
  }
}

function sameKeys(a: readonly { key: string }[], b: readonly { key: string }[]): boolean {
  return a.length === b.length && a.every((x, i) => x.key === b[i]!.key);
}

function mismatch(why: string): FerryError {
  return new FerryError('component/image-mismatch', `Cannot restore the component state: ${why}. Restore it into the component build it was captured from.`);
}

/** Word-wise views: pages are 64 KiB-aligned slices of a memory or a copy, so 4-byte alignment always holds. */
function words(a: Uint8Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2);
}

function isZero(page: Uint8Array): boolean {
  const w = words(page);
  for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const x = words(a);
  const y = words(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
