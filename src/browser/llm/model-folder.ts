/**
 * The origin-private folder downloaded models are kept in: per model a folder `<key>/` of segments
 * `<offset>.part` (each committed when it closed) and, once the whole file checked out, its `done.json` marker.
 */
import * as v from 'valibot';
import { FerryError } from '../../core/errors.ts';
import { insecurePageReason } from '../secure-context.ts';

export const MODELS_FOLDER = 'ferry-models';
const DONE = 'done.json';
const SEGMENT = /^(\d{15})\.part$/;

const DoneSchema = v.object({ url: v.string(), bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)) });

/** Where a download stands on this device, without fetching anything. */
export interface DownloadState {
  readonly state: 'downloaded' | 'partial' | 'absent';
  /** Bytes stored (all of them when downloaded). */
  readonly stored: number;
}

/** The state of the download kept under `key` in the models folder `root`. */
export async function stateOf(root: FileSystemDirectoryHandle, key: string): Promise<DownloadState> {
  const dir = await root.getDirectoryHandle(key).catch(() => undefined);
  if (!dir) {
    const single = await existingFile(root, `${key}.gguf`);
    return single ? { state: 'downloaded', stored: single.size } : { state: 'absent', stored: 0 };
  }
  const segments = await storedSegments(dir);
  const stored = segments.reduce((n, s) => n + s.size, 0);
  const done = await readDone(dir);
  return done && done.bytes === stored ? { state: 'downloaded', stored } : stored > 0 ? { state: 'partial', stored } : { state: 'absent', stored: 0 };
}

/** The contiguous run of segments from byte 0, in order; anything after a gap is removed. */
export async function storedSegments(dir: FileSystemDirectoryHandle): Promise<File[]> {
  const found: { start: number; file: File }[] = [];
  for await (const [name, handle] of entries(dir)) {
    const m = SEGMENT.exec(name);
    if (m && handle.kind === 'file') found.push({ start: Number(m[1]), file: await (handle as FileSystemFileHandle).getFile() });
  }
  found.sort((a, b) => a.start - b.start);
  const run: File[] = [];
  let end = 0;
  for (const s of found) {
    if (s.start === end && s.file.size > 0) {
      run.push(s.file);
      end += s.file.size;
    } else {
      await dir.removeEntry(segmentName(s.start)).catch(() => undefined);
    }
  }
  return run;
}

/** The model kept in `dir`: its segments as one File (no copy). */
export async function assemble(dir: FileSystemDirectoryHandle, key: string): Promise<File> {
  return new File(await storedSegments(dir), `${key}.gguf`, { type: 'application/octet-stream' });
}

/** Empties `dir` (a download that starts over). */
export async function clear(dir: FileSystemDirectoryHandle): Promise<void> {
  const names: string[] = [];
  for await (const [name] of entries(dir)) names.push(name);
  for (const name of names) await dir.removeEntry(name, { recursive: true });
}

/** The marker of a whole, checked file; undefined when absent or unreadable. */
export async function readDone(dir: FileSystemDirectoryHandle): Promise<v.InferOutput<typeof DoneSchema> | undefined> {
  const file = await existingFile(dir, DONE);
  if (!file) return undefined;
  try {
    const parsed = v.safeParse(DoneSchema, JSON.parse(await file.text()));
    return parsed.success ? parsed.output : undefined;
  } catch {
    return undefined;
  }
}

/** Marks the file in `dir` whole and checked; written last, so only a checked file is ever taken from the cache. */
export async function markDone(dir: FileSystemDirectoryHandle, done: v.InferOutput<typeof DoneSchema>): Promise<void> {
  const marker = await (await dir.getFileHandle(DONE, { create: true })).createWritable();
  await marker.write(JSON.stringify(done));
  await marker.close();
}

export async function existingFile(dir: FileSystemDirectoryHandle, name: string): Promise<File | undefined> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch {
    return undefined;
  }
}

export function entries(dir: FileSystemDirectoryHandle): AsyncIterable<[string, FileSystemHandle]> {
  return (dir as FileSystemDirectoryHandle & { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();
}

export async function modelsFolder(folder: string): Promise<FileSystemDirectoryHandle> {
  if (!globalThis.navigator?.storage?.getDirectory) {
    throw new FerryError('model/no-storage', insecurePageReason('origin-private file system to cache models in') ?? 'This browser has no origin-private file system, so models cannot be cached. Use a current Chromium, Firefox or Safari.');
  }
  return (await navigator.storage.getDirectory()).getDirectoryHandle(folder, { create: true });
}

export const segmentName = (offset: number): string => `${String(offset).padStart(15, '0')}.part`;
