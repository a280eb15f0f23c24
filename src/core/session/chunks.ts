/**
 * Large binary state (component memory images, KV files) as fixed 64 KiB pages: each page is an object, all-zero
 * pages are elided (null), so a checkpoint stores only the pages that changed and forks share the rest.
 */
import { FerryError } from '../errors.ts';
import { objectId, type ObjectId, type Store, type StoredObject } from '../store/index.ts';
import { PAGE_SIZE, decodeObject, encodeObject, type ChunkList } from './schema.ts';

export interface ChunkedImage {
  list: ChunkList;
  listId: ObjectId;
  /** The chunk-list object and every page it names that was not shared with `previous`, children first. */
  objects: StoredObject[];
}

/** A previous image of the same component and its list: pages equal byte-for-byte are reused without hashing. */
export interface PreviousImage {
  image: Uint8Array;
  list: ChunkList;
}

export async function chunkImage(image: Uint8Array, previous?: PreviousImage): Promise<ChunkedImage> {
  const pageCount = Math.ceil(image.length / PAGE_SIZE);
  const pages: (ObjectId | null)[] = new Array<ObjectId | null>(pageCount);
  const objects: StoredObject[] = [];
  const hashing: Promise<void>[] = [];
  for (let i = 0; i < pageCount; i++) {
    const page = image.subarray(i * PAGE_SIZE, Math.min(image.length, (i + 1) * PAGE_SIZE));
    const before = previous?.image.subarray(i * PAGE_SIZE, Math.min(previous.image.length, (i + 1) * PAGE_SIZE));
    const reused = previous?.list.pages[i];
    if (before && reused !== undefined && sameBytes(page, before)) {
      pages[i] = reused;
    } else if (isZero(page)) {
      pages[i] = null;
    } else {
      const bytes = page.slice();
      hashing.push(objectId(bytes).then((id) => {
        pages[i] = id;
        objects.push({ id, bytes });
      }));
    }
  }
  await Promise.all(hashing);
  const list: ChunkList = { k: 'chunks', v: 1, size: image.length, pageSize: PAGE_SIZE, pages };
  const listBytes = encodeObject('chunks', list);
  const listId = await objectId(listBytes);
  objects.push({ id: listId, bytes: listBytes });
  return { list, listId, objects };
}

/** The pages a step changed: index → new bytes (the last page exactly as long as the image), or null for all zero. */
export interface ImageDelta {
  size: number;
  pages: ReadonlyMap<number, Uint8Array | null>;
}

/**
 * Applies a delta to a previous chunk list without looking at unchanged pages: the cost is the changed pages plus
 * the list itself, whatever the image's size.
 */
export async function chunkDelta(previous: ChunkList | undefined, delta: ImageDelta): Promise<ChunkedImage> {
  const pageCount = Math.ceil(delta.size / PAGE_SIZE);
  const pages: (ObjectId | null)[] = Array.from({ length: pageCount }, (_, i) => previous?.pages[i] ?? null);
  // A kept page must keep its length: when the image is resized, a partial last page has to come in the delta.
  const pageLength = (size: number, i: number) => Math.max(0, Math.min(PAGE_SIZE, size - i * PAGE_SIZE));
  pages.forEach((id, i) => {
    if (id !== null && !delta.pages.has(i) && pageLength(previous!.size, i) !== pageLength(delta.size, i)) throw badDelta(`page ${i} changed length and must be given whole`);
  });
  const objects: StoredObject[] = [];
  await Promise.all(
    [...delta.pages].map(async ([i, page]) => {
      if (!Number.isInteger(i) || i < 0 || i >= pageCount) throw badDelta(`page index ${i} is outside an image of ${delta.size} bytes`);
      const expected = Math.min(PAGE_SIZE, delta.size - i * PAGE_SIZE);
      if (page === null || isZero(page)) {
        if (page !== null && page.length !== expected) throw badDelta(`page ${i} is ${page.length} bytes, expected ${expected}`);
        pages[i] = null;
        return;
      }
      if (page.length !== expected) throw badDelta(`page ${i} is ${page.length} bytes, expected ${expected}`);
      const bytes = page.slice();
      const id = await objectId(bytes);
      pages[i] = id;
      objects.push({ id, bytes });
    }),
  );
  const list: ChunkList = { k: 'chunks', v: 1, size: delta.size, pageSize: PAGE_SIZE, pages };
  const listBytes = encodeObject('chunks', list);
  const listId = await objectId(listBytes);
  objects.push({ id: listId, bytes: listBytes });
  return { list, listId, objects };
}

function badDelta(what: string): FerryError {
  return new FerryError('session/bad-delta', `The component state delta is inconsistent: ${what}. Send the whole image instead.`);
}

/** Reads and decodes a chunk list. */
export async function readChunkList(store: Store, listId: ObjectId): Promise<ChunkList> {
  const bytes = await store.get(listId);
  if (!bytes) throw missing(listId);
  return decodeObject('chunks', bytes);
}

/** Reassembles an image from its chunk list. */
export async function readImage(store: Store, listId: ObjectId): Promise<{ image: Uint8Array; list: ChunkList }> {
  return (await readImages(store, [listId]))[0]!;
}

/** Reassembles several images: their chunk lists in one read, then all their pages in one more. */
export async function readImages(store: Store, listIds: readonly ObjectId[]): Promise<{ image: Uint8Array; list: ChunkList }[]> {
  const found = await store.getMany(listIds);
  const lists = found.map((bytes, n) => {
    if (!bytes) throw missing(listIds[n]!);
    return decodeObject('chunks', bytes);
  });
  const present = lists.flatMap((list, n) => list.pages.flatMap((id, i) => (id === null ? [] : [{ id, i, n }])));
  const pages = await store.getMany(present.map((p) => p.id));
  const images = lists.map((list) => new Uint8Array(list.size));
  present.forEach((p, k) => {
    const page = pages[k];
    if (!page) throw missing(p.id);
    const list = lists[p.n]!;
    const expected = Math.min(PAGE_SIZE, list.size - p.i * PAGE_SIZE);
    if (page.length !== expected) {
      throw new FerryError('snapshot/bad-object', `Page ${p.i} of chunk list ${listIds[p.n]} is ${page.length} bytes, expected ${expected}; the data is damaged.`);
    }
    images[p.n]!.set(page, p.i * PAGE_SIZE);
  });
  return lists.map((list, n) => ({ image: images[n]!, list }));
}

function missing(id: ObjectId): FerryError {
  return new FerryError('store/missing-object', `Object ${id} of a component image is not in the store; re-sync the session from a complete copy.`);
}

function words(a: Uint8Array): Uint32Array | undefined {
  return a.byteOffset % 4 === 0 && a.length % 4 === 0 ? new Uint32Array(a.buffer, a.byteOffset, a.length / 4) : undefined;
}

function isZero(a: Uint8Array): boolean {
  const w = words(a);
  if (w) {
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const wa = words(a);
  const wb = words(b);
  if (wa && wb) {
    for (let i = 0; i < wa.length; i++) if (wa[i] !== wb[i]) return false;
    return true;
  }
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
