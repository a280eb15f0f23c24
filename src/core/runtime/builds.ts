/**
 * A session carries the component builds it runs (DESIGN §4, §9): each checkpoint names, beside the components'
 * state, a `build/<component id>` entry whose bytes are the build's files, so the session keeps running the build it
 * started with after an app update — on this device and on a worker that ships only a newer build. The entry is an
 * image chunked into pages like any state: a small header, then each file starting on a page boundary, so a file
 * shared by many builds (QuickJS's engine module is in every component) is stored once, whichever build holds it.
 * Like a KV entry, a build entry is detachable (snapshot/kv.ts): a host that already has the build need not fetch it.
 * Loading from an entry verifies every file against the manifest, and the manifest against the id (load.ts).
 */
import { FerryError, isFerryError } from '../errors.ts';
import { PAGE_SIZE, decodeMsgpack, encodeCanonical, type Session } from '../session/index.ts';
import { BUILD_PREFIX, buildComponentName } from '../snapshot/index.ts';
import type { ObjectId } from '../store/index.ts';
import { loadComponent, type ComponentFiles, type LoadedComponent, type LoadOptions } from './load.ts';

export { BUILD_PREFIX, buildComponentName };

const FORMAT = 'ferry-build';
const VERSION = 1;
/** More files than any built component has (a glue module, a manifest, a few dozen core modules). */
const MAX_FILES = 256;

const pageUp = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

/** A build's files as one image: a u32 header length, the header, then each file on a page boundary. */
export function encodeBuild(files: ComponentFiles): Uint8Array {
  const names = Object.keys(files).sort();
  // The header's own size fixes where the first file starts: lay the files out after a guess, then again after
  // the header as it came out, until it fits before them.
  const layout = (start: number): { table: [string, number, number][]; header: Uint8Array } => {
    let at = start;
    const table = names.map((name): [string, number, number] => {
      const entry: [string, number, number] = [name, at, files[name]!.length];
      at = pageUp(at + files[name]!.length);
      return entry;
    });
    return { table, header: encodeCanonical({ f: FORMAT, v: VERSION, files: table }) };
  };
  let { table, header } = layout(PAGE_SIZE);
  while (pageUp(4 + header.length) > (table[0]?.[1] ?? pageUp(4 + header.length))) ({ table, header } = layout(pageUp(4 + header.length)));
  const last = table.at(-1);
  const out = new Uint8Array(last ? last[1] + last[2] : pageUp(4 + header.length));
  new DataView(out.buffer).setUint32(0, header.length);
  out.set(header, 4);
  for (const [name, offset] of table) out.set(files[name]!, offset);
  return out;
}

const bad = (why: string, where = 'stored in the session'): FerryError => new FerryError('runtime/bad-build', `A component build ${where} is damaged (${why}); it cannot be loaded.`);

/** The files of a build image, each checked to lie within it; `where` says where the image came from, for errors. */
export function decodeBuild(image: Uint8Array, where?: string): ComponentFiles {
  if (image.length < 4) throw bad('it is empty', where);
  const length = new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(0);
  if (4 + length > image.length || length > PAGE_SIZE * 4) throw bad('its header is out of bounds', where);
  const header = decodeMsgpack(image.subarray(4, 4 + length), 'runtime/bad-build', 'A build header') as { f?: unknown; v?: unknown; files?: unknown };
  if (header?.f !== FORMAT || header.v !== VERSION || !Array.isArray(header.files) || header.files.length > MAX_FILES) throw bad('its header is not a build header', where);
  const files: ComponentFiles = {};
  for (const entry of header.files as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 3) throw bad('a file entry is malformed', where);
    const [name, offset, size] = entry as [unknown, unknown, unknown];
    if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(name) || name in files) throw bad('a file name is invalid or repeated', where);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(size) || (offset as number) < 4 + length || (size as number) < 0 || (offset as number) + (size as number) > image.length) {
      throw bad(`file ${name} lies outside the build`, where);
    }
    files[name] = image.subarray(offset as number, (offset as number) + (size as number));
  }
  return files;
}

/**
 * Build `id` as checkpoint `at` of `session` carries it, loaded and verified; undefined when it carries none, or
 * names it without its bytes here (a detached entry: the session was fetched without a build its relay ships).
 */
export async function loadSessionBuild(session: Session, at: ObjectId, id: ObjectId, options: LoadOptions = {}): Promise<LoadedComponent | undefined> {
  const name = buildComponentName(id);
  if (!(name in (await session.checkpoint(at)).components)) return undefined;
  const image = await session.component(at, name).catch((err: unknown) => {
    if (isFerryError(err, 'store/missing-object')) return undefined;
    throw err;
  });
  return image && loadBuildImage(id, image, options);
}

/**
 * Build `id` from its image, verified: every file against the manifest, the manifest against the id (load.ts), so
 * an image from anywhere (the session, a relay) loads only as the build it claims to be. `where`: as in decodeBuild.
 */
export function loadBuildImage(id: ObjectId, image: Uint8Array, options: LoadOptions = {}, where?: string): Promise<LoadedComponent> {
  const files = decodeBuild(image, where);
  return loadComponent(id, {
    read: async (file) => {
      const bytes = files[file];
      if (!bytes) throw bad(`it lacks ${file}`, where);
      return bytes;
    },
  }, options);
}
