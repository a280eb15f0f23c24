/**
 * Workspace paths for the files a person adds: the workspace tool's own rules (components/workspace/files.ts:
 * no "..", no control characters, a length limit), a leading "/" dropped (a dropped folder's entries have one),
 * and what is never source skipped with the reason (version-control and dependency folders, OS litter).
 */
import { normalizePath } from '../../../components/workspace/files.ts';

const SKIPPED_FOLDERS: Record<string, string> = {
  '.git': 'version-control data (.git), not source',
  '.hg': 'version-control data (.hg), not source',
  '.svn': 'version-control data (.svn), not source',
  node_modules: 'installed dependencies (node_modules), not source',
  __MACOSX: 'macOS archive metadata (__MACOSX)',
};
const SKIPPED_FILES: Record<string, string> = {
  '.DS_Store': 'macOS folder metadata (.DS_Store)',
  'Thumbs.db': 'Windows thumbnail cache (Thumbs.db)',
};

/** `folder`: the skipped folder the path is in, so a skipped dependency tree is reported once, not file by file. */
export type CheckedPath = { ok: true; path: string } | { ok: false; reason: string; folder?: string };

/** Why a folder of this name is never added, or undefined. */
export function skippedFolder(name: string): string | undefined {
  return SKIPPED_FOLDERS[name];
}

export function workspacePath(raw: string): CheckedPath {
  let path: string;
  try {
    path = normalizePath(raw);
  } catch (err) {
    return { ok: false, reason: typeof err === 'string' ? err : 'not a usable path' };
  }
  const parts = path.split('/');
  const at = parts.slice(0, -1).findIndex((p) => SKIPPED_FOLDERS[p] !== undefined);
  if (at >= 0) return { ok: false, reason: SKIPPED_FOLDERS[parts[at]!]!, folder: `${parts.slice(0, at + 1).join('/')}/` };
  const litter = SKIPPED_FILES[parts.at(-1)!];
  return litter ? { ok: false, reason: litter } : { ok: true, path };
}
