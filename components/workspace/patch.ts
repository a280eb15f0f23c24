/**
 * Unified diffs in the workspace: `patch` applies one (several files, all or nothing) with jsdiff, after repairing
 * what models commonly get wrong — stale line counts in `@@` headers, bare `@@` headers, blank context lines that
 * lost their leading space, Markdown fences; `diff` writes one, so an agent can propose changes that apply.
 */
import { applyPatch, createTwoFilesPatch, parsePatch, type StructuredPatch, type StructuredPatchHunk } from 'diff';
import type { Files } from './files.ts';

const HUNK_HEADER = /^@@(?:\s+-(\d+)(?:,(\d+))?\s+\+(\d+)(?:,(\d+))?\s*@@)?(.*)$/;

/** Rewrites every hunk header with counts that match its body, and drops fences and stray prose. */
export function normalizeDiff(text: string): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  let hunk: { header: RegExpExecArray; body: string[] } | undefined;
  /** Blank lines at the end of the current hunk that were turned into context lines. */
  let pendingBlank = 0;
  const flush = () => {
    if (!hunk) return;
    // A blank line we turned into context is only context if a real body line follows it.
    while (hunk.body.length > 0 && hunk.body[hunk.body.length - 1] === ' ' && pendingBlank > 0) { hunk.body.pop(); pendingBlank--; }
    const oldLines = hunk.body.filter((l) => l[0] === ' ' || l[0] === '-').length;
    const newLines = hunk.body.filter((l) => l[0] === ' ' || l[0] === '+').length;
    const [, a, , c, , rest] = hunk.header;
    // A header without numbers gets line 1: jsdiff searches the whole file for the place the context fits.
    const oldStart = a === undefined ? 1 : Number(a);
    const newStart = c === undefined ? oldStart : Number(c);
    out.push(`@@ -${oldLines === 0 ? Math.max(0, oldStart) : Math.max(1, oldStart)},${oldLines} +${newLines === 0 ? Math.max(0, newStart) : Math.max(1, newStart)},${newLines} @@${rest ?? ''}`, ...hunk.body);
    hunk = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('```')) continue;
    const header = HUNK_HEADER.exec(line);
    if (header) {
      flush();
      hunk = { header, body: [] };
      pendingBlank = 0;
      continue;
    }
    const fileHeader = (line.startsWith('--- ') && lines[i + 1]?.startsWith('+++ ')) || /^(diff --git |Index: |={5,})/.test(line);
    if (hunk && !fileHeader) {
      if (line === '') { hunk.body.push(' '); pendingBlank++; continue; }
      if (line[0] === ' ' || line[0] === '+' || line[0] === '-' || line[0] === '\\') { hunk.body.push(line); pendingBlank = 0; continue; }
      // Prose after a hunk ("This change…") ends it.
      flush();
      continue;
    }
    flush();
    if (fileHeader || line.startsWith('+++ ') || /^(new|deleted) file mode|^index [0-9a-f]/.test(line)) out.push(line);
  }
  flush();
  return out.join('\n');
}

interface FileChange {
  path: string;
  status: 'modified' | 'created' | 'deleted';
  added: number;
  removed: number;
}

/** Applies `diff` to `files` (unless `dryRun`); every file must apply, or nothing changes and the error says where. */
export function patchFiles(files: Files, diff: string, dryRun: boolean, pathOverride: string | undefined): unknown {
  let patches: StructuredPatch[];
  try {
    patches = parsePatch(normalizeDiff(diff)) as StructuredPatch[];
  } catch (err) {
    throw `The diff does not parse: ${err instanceof Error ? err.message : String(err)}. Write a unified diff: "--- a/<path>", "+++ b/<path>", then "@@ -l,n +l,n @@" hunks.`;
  }
  patches = patches.filter((p) => p.hunks.length > 0);
  if (patches.length === 0) throw 'The diff contains no hunks ("@@ … @@" followed by lines starting with " ", "-" or "+").';
  const next = new Map<string, string | null>();
  const current = (path: string) => (next.has(path) ? next.get(path)! : files.get(path) ?? null);
  const changes: FileChange[] = [];
  for (const patch of patches) {
    const { path, created, deleted } = target(patch, files, pathOverride);
    const before = created ? '' : current(path);
    if (before === null) throw `${files.missing(path)} (The diff changes "${path}"; to create a file, use "--- /dev/null".)`;
    if (created && current(path) !== null && current(path) !== '') throw `The diff creates "${path}", which already exists; diff against its current content instead.`;
    const after = applyPatch(before, patch);
    if (after === false) throw explainFailure(path, before, patch);
    if (deleted && after.trim() !== '') throw `The diff deletes "${path}" but does not remove all of its lines.`;
    next.set(path, deleted ? null : after);
    const added = patch.hunks.reduce((n, h) => n + h.lines.filter((l) => l[0] === '+').length, 0);
    const removed = patch.hunks.reduce((n, h) => n + h.lines.filter((l) => l[0] === '-').length, 0);
    changes.push({ path, status: created ? 'created' : deleted ? 'deleted' : 'modified', added, removed });
  }
  if (!dryRun) commit(files, next);
  return { applied: !dryRun, ...(dryRun ? { applies: true } : {}), files: changes };
}

/** Writes every result; if a limit refuses one, the files written so far are put back, so nothing half-applies. */
function commit(files: Files, next: Map<string, string | null>): void {
  const undo: [string, string | null][] = [];
  try {
    for (const [path, content] of next) {
      undo.push([path, files.get(path) ?? null]);
      if (content === null) files.delete(path);
      else files.set(path, content);
    }
  } catch (err) {
    for (const [path, content] of undo.reverse()) {
      if (content === null) { if (files.get(path) !== undefined) files.delete(path); } else files.set(path, content);
    }
    throw err;
  }
}

function target(patch: StructuredPatch, files: Files, pathOverride: string | undefined): { path: string; created: boolean; deleted: boolean } {
  const created = patch.oldFileName === '/dev/null';
  const deleted = patch.newFileName === '/dev/null';
  const named = deleted ? patch.oldFileName : patch.newFileName ?? patch.oldFileName;
  const raw = pathOverride ?? named;
  if (raw === undefined || raw === '') throw 'The diff names no file: start it with "--- a/<path>" and "+++ b/<path>" lines, or pass "path".';
  let path = raw.replace(/\\/g, '/').replace(/^\.?\//, '');
  // git's a/ and b/ prefixes, unless the workspace really has a folder of that name.
  if (pathOverride === undefined && /^[ab]\//.test(path) && files.get(path) === undefined) path = path.slice(2);
  if (path.split('/').includes('..')) throw `The diff names "${raw}", which is outside the workspace.`;
  return { path, created, deleted };
}

function explainFailure(path: string, content: string, patch: StructuredPatch): string {
  const lines = content.split('\n');
  const bad = patch.hunks.findIndex((h) => applyPatch(content, { ...patch, hunks: [h] }) === false);
  const hunk: StructuredPatchHunk | undefined = patch.hunks[bad];
  if (!hunk) return `The diff does not apply to "${path}": its hunks overlap or are out of order. Read the file again and write one diff against its current content.`;
  const expected = hunk.lines.filter((l) => l[0] === ' ' || l[0] === '-').slice(0, 4).map((l) => `  ${l.slice(1)}`).join('\n');
  const at = Math.max(0, hunk.oldStart - 1);
  const actual = lines.slice(at, at + 4).map((l) => `  ${l}`).join('\n');
  return `Hunk ${bad + 1} of the diff for "${path}" (@@ -${hunk.oldStart},${hunk.oldLines} @@) does not match the file: ` +
    `its context and removed lines were not found anywhere in "${path}". It expects:\n${expected}\n` +
    `but line ${at + 1} onwards reads:\n${actual}\nRead the file again ({"op":"read"}) and copy the lines exactly, or use {"op":"diff"} to compute the diff.`;
}

/** A unified diff from `before` (null: the file does not exist) to `after`, with git-style a/ b/ names. */
export function diffText(path: string, before: string | null, after: string): string {
  if (before === after) return '';
  return createTwoFilesPatch(before === null ? '/dev/null' : `a/${path}`, `b/${path}`, before ?? '', after, undefined, undefined, { context: 3 })
    .replace(/^=+\n/, '');
}
