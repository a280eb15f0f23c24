/**
 * The GGUF models cached on this device (model-download.ts keeps downloads in the origin-private file system, one
 * folder of segments each; a file picked from disk is one file): what is there, how big, and removing one. An
 * incomplete download resumes next time.
 */
import { FerryError } from '../../core/errors.ts';
import { entries, MODELS_FOLDER, modelsFolder, stateOf } from './model-folder.ts';

export interface CachedModel {
  /** Its name in the cache folder (a hash of the URL it came from, or of the picked file). */
  name: string;
  bytes: number;
  /** False for an interrupted download kept for resuming. */
  complete: boolean;
}

const NAME = /^[0-9a-f]{32}(?:\.gguf|\.part)?$/;

export async function listCachedModels(folderName = MODELS_FOLDER): Promise<CachedModel[]> {
  if (!globalThis.navigator?.storage?.getDirectory) return [];
  const dir = await modelsFolder(folderName);
  const out: CachedModel[] = [];
  for await (const [name, handle] of entries(dir)) {
    if (!NAME.test(name)) continue;
    if (handle.kind === 'directory') {
      const state = await stateOf(dir, name);
      if (state.state !== 'absent') out.push({ name, bytes: state.stored, complete: state.state === 'downloaded' });
    } else {
      const file = await (handle as FileSystemFileHandle).getFile();
      out.push({ name, bytes: file.size, complete: name.endsWith('.gguf') });
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

export async function deleteCachedModel(name: string, folderName = MODELS_FOLDER): Promise<void> {
  if (!NAME.test(name)) throw new FerryError('model/bad-name', `"${name}" is not a cached model; refresh the list and try again.`);
  await (await modelsFolder(folderName)).removeEntry(name, { recursive: true });
}
