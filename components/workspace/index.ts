/**
 * `workspace`: a tree of text files kept in module memory — list, read, write, delete, move, grep, diff, and apply a
 * unified diff. The files are plain module state: the host checkpoints the component's memory after every call,
 * so rolling a session back restores the files exactly, with no save code here.
 */
import '../lib/no-clock.ts';
import { clip, int, optBool, optInt, optStr, parseArgs, str, type Args } from '../lib/args.ts';
import { diffText, patchFiles } from './patch.ts';
import { workspaceSpec } from './spec.ts';
import { Files, LIMITS, normalizePath } from './files.ts';

const files = new Files();
const OPS = ['list', 'read', 'write', 'delete', 'move', 'grep', 'diff', 'patch'] as const;

export function describe() {
  return { name: workspaceSpec.name, description: workspaceSpec.description, argsSchema: JSON.stringify(workspaceSpec.parameters), capabilities: [] as string[] };
}

/** The ok value is JSON text; a thrown string becomes the WIT `err` — a message meant for the model. */
export function invoke(text: string): string {
  try {
    return JSON.stringify(run(parseArgs(text, OPS)));
  } catch (err) {
    // Anything unexpected (a library error, a stack overflow) still goes back as a message, never a trap.
    throw typeof err === 'string' ? err : `The workspace failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function run(args: Args & { op: string }): unknown {
  switch (args.op) {
    case 'list': return files.list(optStr(args, 'path') ?? '', optBool(args, 'recursive') ?? true);
    case 'read': return read(args);
    case 'write': {
      const path = normalizePath(str(args, 'path'));
      return files.write(path, str(args, 'content', { allowEmpty: true, maxLength: LIMITS.fileBytes }), optBool(args, 'append') ?? false);
    }
    case 'delete': return files.remove(normalizePath(str(args, 'path')));
    case 'move': return files.move(normalizePath(str(args, 'from')), normalizePath(str(args, 'to')));
    case 'grep': return files.grep({
      pattern: str(args, 'pattern', { maxLength: 1000 }),
      path: optStr(args, 'path') ?? '',
      regex: optBool(args, 'regex') ?? false,
      ignoreCase: optBool(args, 'ignore_case') ?? false,
      maxResults: optInt(args, 'max_results', 1, LIMITS.grepResults) ?? 100,
    });
    case 'diff': {
      const path = normalizePath(str(args, 'path'));
      return { path, diff: clip(diffText(path, files.get(path) ?? null, str(args, 'content', { allowEmpty: true, maxLength: LIMITS.fileBytes })), LIMITS.resultChars) };
    }
    case 'patch': return patchFiles(files, str(args, 'diff', { maxLength: LIMITS.fileBytes }), optBool(args, 'dry_run') ?? false, optStr(args, 'path'));
    default: throw `Unknown op "${args.op}".`;
  }
}

function read(args: Args): unknown {
  const path = normalizePath(str(args, 'path'));
  const content = files.get(path);
  if (content === undefined) throw files.missing(path);
  const lines = content.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const offset = args.offset === undefined ? 1 : int(args, 'offset', 1, Math.max(1, lines.length));
  const limit = optInt(args, 'limit', 1, 100_000) ?? lines.length;
  // Whole lines only, up to the result size limit, so the model can ask for the rest by offset.
  let end = Math.min(lines.length, offset - 1 + limit);
  let size = 0;
  for (let i = offset - 1; i < end; i++) {
    size += lines[i]!.length + 1;
    if (size > LIMITS.resultChars && i > offset - 1) { end = i; break; }
  }
  const out: Record<string, unknown> = { path, lines: lines.length, from: offset, to: end, content: lines.slice(offset - 1, end).join('\n') };
  if (end < lines.length) out.next_offset = end + 1;
  return out;
}
