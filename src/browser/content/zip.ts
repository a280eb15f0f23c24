/**
 * The files of a .zip, read with fflate, within explicit limits checked on its directory before anything is
 * unpacked: the archive's size, how many entries it lists, each entry's and all entries' unpacked sizes (so a
 * "zip bomb" is refused, not inflated). Folders and entries this reader cannot unpack are skipped with the reason.
 */
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { FerryError } from '../../core/errors.ts';
import { CONTENT_LIMITS, size } from './limits.ts';

export interface ZipEntry {
  path: string;
  bytes: Uint8Array;
}

export interface Skipped {
  path: string;
  reason: string;
}

/** UTF-8 text may take up to 4 bytes a character: an entry larger than this cannot fit in one workspace file. */
const MAX_ENTRY_BYTES = CONTENT_LIMITS.fileChars * 4;

export function readZip(bytes: Uint8Array, name: string): { entries: ZipEntry[]; skipped: Skipped[] } {
  if (bytes.length > CONTENT_LIMITS.zipBytes) {
    throw new FerryError('content/too-large', `${name} is ${size(bytes.length)}; a .zip may be at most ${size(CONTENT_LIMITS.zipBytes)}. Add the folders you need instead.`);
  }
  const skipped: Skipped[] = [];
  let listed = 0;
  let unpacked = 0;
  let unzipped: Record<string, Uint8Array>;
  try {
    unzipped = unzipSync(bytes, {
      filter(file: UnzipFileInfo) {
        if (++listed > CONTENT_LIMITS.zipEntries) {
          throw new FerryError('content/too-many-files', `${name} lists more than ${CONTENT_LIMITS.zipEntries} entries; add a smaller archive, or the folders you need.`);
        }
        if (file.name.endsWith('/')) return false;
        if (file.compression !== 0 && file.compression !== 8) {
          skipped.push({ path: file.name, reason: `packed with a compression method (${file.compression}) this reader cannot unpack` });
          return false;
        }
        if (file.originalSize > MAX_ENTRY_BYTES) {
          skipped.push({ path: file.name, reason: `${size(file.originalSize)} unpacked, more than a workspace file may hold (${size(CONTENT_LIMITS.fileChars)})` });
          return false;
        }
        unpacked += file.originalSize;
        if (unpacked > CONTENT_LIMITS.zipUnpackedBytes) {
          throw new FerryError('content/too-large', `${name} unpacks to more than ${size(CONTENT_LIMITS.zipUnpackedBytes)}; add a smaller archive, or the folders you need.`);
        }
        return true;
      },
    });
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw new FerryError('content/bad-zip', `${name} is not a .zip this reader can open (${err instanceof Error ? err.message : String(err)}). Check the file, or unpack it and add the folder.`, { cause: err });
  }
  return { entries: Object.entries(unzipped).map(([path, entry]) => ({ path, bytes: entry })), skipped };
}
