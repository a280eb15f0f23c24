/**
 * Files a person adds to a workspace — chosen one by one, as a folder, as a .zip, or dropped — read into text files
 * for the workspace tool: each path checked (paths.ts), each file decoded as text (binary files skipped, with the
 * reason), a .zip chosen on its own unpacked in place (zip.ts), and the whole addition held to explicit limits
 * (how many files, how large each one and all of them are). What is skipped is listed, never silently dropped.
 */
import { FerryError } from '../../core/errors.ts';
import { CONTENT_LIMITS, size } from './limits.ts';
import { workspacePath } from './paths.ts';
import { decodeText } from './text.ts';
import { readZip, type Skipped } from './zip.ts';

export type { Skipped } from './zip.ts';

/** A file as chosen: its path relative to what was chosen (a folder's relative path, or its name), and its bytes. */
export interface PickedFile {
  path: string;
  file: Blob;
}

export interface WorkspaceFile {
  path: string;
  content: string;
}

export interface WorkspaceFiles {
  files: WorkspaceFile[];
  skipped: Skipped[];
}

/** The files of a file input (a folder input gives each file's path inside the folder). */
export function pickedFromInput(list: FileList | readonly File[]): PickedFile[] {
  return [...list].map((file) => ({ path: file.webkitRelativePath || file.name, file }));
}

export async function readWorkspaceFiles(picked: readonly PickedFile[]): Promise<WorkspaceFiles> {
  const files = new Map<string, string>();
  const skipped: Skipped[] = [];
  const add = (raw: string, bytes: Uint8Array): void => {
    const checked = workspacePath(raw);
    if (!checked.ok) {
      if (!checked.folder || !skipped.some((s) => s.path === checked.folder)) skipped.push({ path: checked.folder ?? raw, reason: checked.reason });
      return;
    }
    const decoded = decodeText(bytes);
    if (!decoded.ok) return void skipped.push({ path: checked.path, reason: decoded.reason });
    if (decoded.text.length > CONTENT_LIMITS.fileChars) {
      return void skipped.push({ path: checked.path, reason: `${decoded.text.length.toLocaleString('en')} characters, more than a workspace file may hold (${CONTENT_LIMITS.fileChars.toLocaleString('en')})` });
    }
    files.set(checked.path, decoded.text);
    if (files.size > CONTENT_LIMITS.workspaceFiles) {
      throw new FerryError('content/too-many-files', `That is more than ${CONTENT_LIMITS.workspaceFiles} files to add at once; add the folders you need a few at a time.`);
    }
  };
  for (const { path, file } of picked) {
    const isZip = /\.zip$/i.test(path);
    if (isZip && !path.replace(/\\/g, '/').replace(/^\//, '').includes('/')) {
      const { entries, skipped: inZip } = readZip(await bytesOf(file, CONTENT_LIMITS.zipBytes, path), path);
      skipped.push(...inZip.map((s) => ({ path: `${path}: ${s.path}`, reason: s.reason })));
      for (const entry of entries) add(entry.path, entry.bytes);
    } else if (isZip) {
      skipped.push({ path, reason: 'a .zip inside a folder: add it on its own to unpack it' });
    } else if (file.size > CONTENT_LIMITS.fileChars * 4) {
      skipped.push({ path, reason: `${size(file.size)}, more than a workspace file may hold (${size(CONTENT_LIMITS.fileChars)})` });
    } else {
      add(path, new Uint8Array(await file.arrayBuffer()));
    }
  }
  const total = [...files.values()].reduce((n, c) => n + c.length, 0);
  if (total > CONTENT_LIMITS.totalChars) {
    throw new FerryError('content/too-large', `These files hold ${total.toLocaleString('en')} characters; a workspace holds at most ${CONTENT_LIMITS.totalChars.toLocaleString('en')}. Add fewer files.`);
  }
  return { files: [...files].map(([path, content]) => ({ path, content })).sort((a, b) => (a.path < b.path ? -1 : 1)), skipped };
}

/** A file's bytes, refused before reading when it is larger than `max`. */
export async function bytesOf(file: Blob, max: number, name: string): Promise<Uint8Array> {
  if (file.size > max) throw new FerryError('content/too-large', `${name} is ${size(file.size)}; at most ${size(max)} can be added.`);
  return new Uint8Array(await file.arrayBuffer());
}
