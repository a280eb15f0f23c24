/**
 * The GGUF models cached on this device (model-download.ts keeps them in the origin-private file system): what is
 * there, how big, and removing one. A `.part` file is a download that was interrupted and resumes next time.
 */
import { FerryError } from '../../core/errors.ts';

export interface CachedModel {
  /** The file's name in the cache folder (a hash of the URL it came from). */
  name: string;
  bytes: number;
  /** False for an interrupted download kept for resuming. */
  complete: boolean;
}

const FOLDER = 'ferry-models';

async function folder(name: string): Promise<FileSystemDirectoryHandle | undefined> {
  if (!globalThis.navigator?.storage?.getDirectory) return undefined;
  return (await navigator.storage.getDirectory()).getDirectoryHandle(name, { create: true });
}

export async function listCachedModels(folderName = FOLDER): Promise<CachedModel[]> {
  const dir = await folder(folderName);
  if (!dir) return [];
  const out: CachedModel[] = [];
  for await (const [name, handle] of (dir as FileSystemDirectoryHandle & { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (handle.kind !== 'file' || !/\.(gguf|part)$/.test(name)) continue;
    const file = await (handle as FileSystemFileHandle).getFile();
    out.push({ name, bytes: file.size, complete: name.endsWith('.gguf') });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function deleteCachedModel(name: string, folderName = FOLDER): Promise<void> {
  if (!/^[0-9a-f]{32}\.(gguf|part)$/.test(name)) throw new FerryError('model/bad-name', `"${name}" is not a cached model file; refresh the list and try again.`);
  const dir = await folder(folderName);
  if (!dir) throw new FerryError('model/no-storage', 'This browser has no origin-private file system, so it caches no models.');
  await dir.removeEntry(name);
}
