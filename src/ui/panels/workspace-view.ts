/**
 * The dev-guide's workspace as the session's events show it: the files its workspace tool holds (replayed from the
 * tool's write, delete, move and patch calls that succeeded, and filled in from reads and listings), and the diffs
 * the agent proposed (```diff blocks in its replies, and patch calls), each with whether it was applied.
 * Pure and total: malformed arguments, outputs or diffs are skipped or marked, never thrown.
 */
import { applyPatch, parsePatch } from 'diff';
import type { SessionEvent } from '../../core/session/index.ts';
import { normalizeDiff } from '../../../components/workspace/patch.ts';
import { record } from './json.ts';

export interface WorkspaceFile {
  path: string;
  /** null: the file exists, but the events never showed its whole content. */
  content: string | null;
}

export type DiffStatus = 'applied' | 'applies' | 'does-not-apply' | 'unchecked';

export interface ProposedDiff {
  /** Stable key: the diff text with line endings and surrounding blank lines normalised. */
  key: string;
  diff: string;
  /** The files the diff names (as written, a/ b/ prefixes dropped). */
  paths: string[];
  status: DiffStatus;
  /** The tool's message when a check or an apply failed. */
  problem: string | null;
  /** Where it came from: the agent's reply text, or a workspace patch call. */
  from: 'reply' | 'tool-call';
}

export interface WorkspaceView {
  files: WorkspaceFile[];
  diffs: ProposedDiff[];
  /** Workspace tool calls seen (0: the session never used the tool). */
  calls: number;
}

type Event = Pick<SessionEvent, 'type'> & Record<string, unknown>;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** "./a//b.ts" → "a/b.ts"; undefined for paths the workspace would refuse. */
export function cleanPath(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const parts = raw.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  // eslint-disable-next-line no-control-regex
  if (parts.length === 0 || parts.includes('..') || /[\u0000-\u001f]/.test(raw)) return undefined;
  return parts.join('/');
}

export function diffKey(diff: string): string {
  return diff.replace(/\r\n/g, '\n').replace(/^\n+|\s+$/g, '');
}

/** The ```diff / ```patch blocks of a reply that hold at least one hunk. */
export function diffBlocks(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/```(?:diff|patch)[^\n]*\n([\s\S]*?)(?:```|$)/g)) if (m[1]!.includes('@@')) out.push(m[1]!);
  return out;
}

/** The files a diff names, from its "+++" (or "---" for deletions) headers. */
export function diffPaths(diff: string): string[] {
  const out: string[] = [];
  const lines = diff.replace(/\r\n/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.startsWith('+++ ')) continue;
    let name = line.slice(4).split('\t')[0]!.trim();
    if (name === '/dev/null') name = (lines[i - 1]?.startsWith('--- ') ? lines[i - 1]!.slice(4).split('\t')[0]!.trim() : '') || name;
    const p = cleanPath(name.replace(/^[ab]\//, ''));
    if (p && p !== 'dev/null' && !out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Applies a unified diff to `files` (a copy is returned); undefined when it does not parse or apply. Unknown
 * content (null) cannot be patched, except a file the diff creates.
 */
export function applyDiff(files: ReadonlyMap<string, string | null>, diff: string): Map<string, string | null> | undefined {
  try {
    const next = new Map(files);
    const patches = parsePatch(normalizeDiff(diff)).filter((p) => p.hunks.length > 0);
    if (patches.length === 0) return undefined;
    for (const p of patches) {
      const created = p.oldFileName === '/dev/null';
      const deleted = p.newFileName === '/dev/null';
      const raw = (deleted ? p.oldFileName : p.newFileName ?? p.oldFileName) ?? '';
      const path = cleanPath(raw.replace(/^[ab]\//, ''));
      if (!path) return undefined;
      const before = created ? '' : next.get(path);
      if (before === undefined || before === null) return undefined;
      const after = applyPatch(before, p);
      if (after === false) return undefined;
      if (deleted) next.delete(path);
      else next.set(path, after);
    }
    return next;
  } catch {
    return undefined;
  }
}

/** Replays the workspace tool's calls in `events` (oldest first). */
export function workspaceView(events: readonly Event[]): WorkspaceView {
  const calls = new Map<string, Record<string, unknown>>();
  const files = new Map<string, string | null>();
  const diffs = new Map<string, ProposedDiff>();
  let count = 0;

  const propose = (diff: string, from: ProposedDiff['from']): ProposedDiff => {
    const key = diffKey(diff);
    let d = diffs.get(key);
    if (!d) {
      d = { key, diff: key, paths: diffPaths(key), status: 'unchecked', problem: null, from };
      diffs.set(key, d);
    }
    return d;
  };

  for (const e of events) {
    if (e.type === 'generation') {
      for (const block of diffBlocks(str(e.text) ?? '')) propose(block, 'reply');
    } else if (e.type === 'tool-call' && e.tool === 'workspace') {
      const args = record(e.args);
      if (!args) continue;
      count++;
      calls.set(String(e.callId), args);
      const diff = str(args.diff);
      if (args.op === 'patch' && diff) propose(diff, 'tool-call');
    } else if (e.type === 'tool-result') {
      const args = calls.get(String(e.callId));
      if (!args) continue;
      calls.delete(String(e.callId));
      const ok = e.ok === true;
      const output = str(e.output) ?? '';
      const result = record(output);
      switch (args.op) {
        case 'write': {
          const path = cleanPath(args.path);
          const content = str(args.content);
          if (!ok || !path || content === undefined) break;
          const old = files.get(path);
          if (args.append !== true || old === undefined) files.set(path, content);
          else files.set(path, old === null ? null : old + content);
          break;
        }
        case 'delete': {
          const path = cleanPath(args.path);
          if (ok && path) files.delete(path);
          break;
        }
        case 'move': {
          const from = cleanPath(args.from);
          const to = cleanPath(args.to);
          if (!ok || !from || !to) break;
          for (const [p, c] of [...files]) {
            if (p === from || p.startsWith(`${from}/`)) {
              files.delete(p);
              files.set(to + p.slice(from.length), c);
            }
          }
          break;
        }
        case 'read': {
          const path = cleanPath(result?.path ?? args.path);
          if (!ok || !path || !result) break;
          const whole = (result.from === 1 || result.from === undefined) && result.to === result.lines && result.next_offset === undefined;
          const content = str(result.content);
          if (content !== undefined && whole) files.set(path, content === '' ? '' : `${content}\n`);
          else if (!files.has(path)) files.set(path, null);
          break;
        }
        case 'list': {
          if (!ok || !Array.isArray(result?.entries)) break;
          for (const entry of result.entries as unknown[]) {
            const raw = typeof entry === 'string' ? entry : str((entry as Record<string, unknown> | null)?.path);
            const p = raw && !raw.endsWith('/') ? cleanPath(raw) : undefined;
            if (p && !files.has(p)) files.set(p, null);
          }
          break;
        }
        case 'patch': {
          const diff = str(args.diff);
          if (!diff) break;
          const d = propose(diff, 'tool-call');
          const dryRun = args.dry_run === true;
          if (!ok) {
            if (d.status !== 'applied') {
              d.status = 'does-not-apply';
              d.problem = output.slice(0, 2000);
            }
          } else if (dryRun) {
            if (d.status !== 'applied') {
              d.status = 'applies';
              d.problem = null;
            }
          } else {
            d.status = 'applied';
            d.problem = null;
            const next = applyDiff(files, diff);
            if (next) {
              files.clear();
              for (const [p, c] of next) files.set(p, c);
            } else {
              // The tool applied it to content the events never showed whole: the files exist, content unknown.
              for (const p of d.paths) files.set(p, null);
            }
          }
          break;
        }
      }
    }
  }
  return {
    files: [...files].map(([path, content]) => ({ path, content })).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    diffs: [...diffs.values()],
    calls: count,
  };
}

export interface TreeEntry {
  /** The folder or file name. */
  name: string;
  path: string;
  depth: number;
  kind: 'folder' | 'file';
}

/** The paths as a flat, depth-annotated tree (folders first, then files, by name) for a tree view. */
export function fileTree(paths: readonly string[]): TreeEntry[] {
  interface Node { folders: Map<string, Node>; files: string[] }
  const root: Node = { folders: new Map(), files: [] };
  for (const p of paths) {
    const parts = p.split('/');
    let n = root;
    for (const part of parts.slice(0, -1)) {
      let next = n.folders.get(part);
      if (!next) n.folders.set(part, (next = { folders: new Map(), files: [] }));
      n = next;
    }
    n.files.push(parts.at(-1)!);
  }
  const out: TreeEntry[] = [];
  const walk = (n: Node, prefix: string, depth: number): void => {
    for (const name of [...n.folders.keys()].sort()) {
      out.push({ name, path: `${prefix}${name}`, depth, kind: 'folder' });
      walk(n.folders.get(name)!, `${prefix}${name}/`, depth + 1);
    }
    for (const name of [...n.files].sort()) out.push({ name, path: `${prefix}${name}`, depth, kind: 'file' });
  };
  walk(root, '', 0);
  return out;
}

/** The message that asks the agent to apply a diff with its workspace tool. */
export function applyRequest(diff: string): string {
  return `Apply this diff to the workspace now with the workspace tool ({"op":"patch"}), then say which files changed.\n\n\`\`\`diff\n${diffKey(diff)}\n\`\`\``;
}
