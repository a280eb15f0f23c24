/**
 * Files and folders dropped on the page, as picked files with their paths: a dropped folder is walked through the
 * File and Directory Entries API (the only way a drop exposes a folder's contents), its entries read page by page;
 * folders that are never source (paths.ts) are not walked, and are reported as skipped.
 */
import { FerryError } from '../../core/errors.ts';
import { CONTENT_LIMITS } from './limits.ts';
import { skippedFolder } from './paths.ts';
import type { PickedFile, Skipped } from './workspace-files.ts';

/** Files walked at most: a folder far larger than one addition may be is refused before it is all read. */
const MAX_WALKED = CONTENT_LIMITS.workspaceFiles * 4;

export async function droppedFiles(data: DataTransfer): Promise<{ picked: PickedFile[]; skipped: Skipped[] }> {
  const entries = [...data.items].flatMap((item) => {
    const entry = item.kind === 'file' ? item.webkitGetAsEntry?.() : null;
    return entry ? [entry] : [];
  });
  // Browsers without entries give the dropped files themselves (no folders).
  if (entries.length === 0) return { picked: [...data.files].map((file) => ({ path: file.name, file })), skipped: [] };
  const picked: PickedFile[] = [];
  const skipped: Skipped[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    const path = entry.fullPath.replace(/^\//, '');
    if (entry.isFile) {
      if (picked.length >= MAX_WALKED) {
        throw new FerryError('content/too-many-files', `The dropped folders hold more than ${MAX_WALKED} files; add the folders you need a few at a time.`);
      }
      picked.push({ path, file: await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject)) });
      return;
    }
    const never = skippedFolder(entry.name);
    if (never) return void skipped.push({ path: `${path}/`, reason: never });
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const page = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (page.length === 0) break;
      for (const child of page) await walk(child);
    }
  };
  for (const entry of entries) await walk(entry);
  return { picked, skipped };
}
