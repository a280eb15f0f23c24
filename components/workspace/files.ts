/** The workspace's files: a map from normalised path to text, with explicit limits on size and count. */

export const LIMITS = {
  /** One file, in characters. */
  fileBytes: 512 * 1024,
  /** All files together, in characters. */
  totalBytes: 8 * 1024 * 1024,
  files: 2000,
  pathLength: 256,
  /** The most characters a read, list or diff returns at once. */
  resultChars: 24_000,
  grepResults: 500,
  listEntries: 1000,
};

/** "./src//a.ts" → "src/a.ts". Refuses ".." and control characters: paths name files in this workspace only. */
export function normalizePath(raw: string): string {
  const parts = raw.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw `Path "${raw}" contains "..": use a path inside the workspace, e.g. "src/app.ts".`;
  const path = parts.join('/');
  if (path === '') throw 'The path is empty.';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(path)) throw `Path ${JSON.stringify(raw)} contains control characters.`;
  if (path.length > LIMITS.pathLength) throw `Path is ${path.length} characters long; at most ${LIMITS.pathLength} are allowed.`;
  return path;
}

/** A folder prefix ("" for the root) normalised the same way, ending in "/" unless it is the root. */
function dirPrefix(raw: string): string {
  const trimmed = raw.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.').join('/');
  return trimmed === '' ? '' : `${normalizePath(trimmed)}/`;
}

export interface GrepOptions {
  pattern: string;
  path: string;
  regex: boolean;
  ignoreCase: boolean;
  maxResults: number;
}

export class Files {
  readonly #files = new Map<string, string>();
  #total = 0;

  get(path: string): string | undefined {
    return this.#files.get(path);
  }

  paths(): string[] {
    return [...this.#files.keys()].sort();
  }

  /** The error for a path that is not a file, with the nearest hint (a folder of that name, or the listing). */
  missing(path: string): string {
    const inside = this.paths().filter((p) => p.startsWith(`${path}/`));
    if (inside.length > 0) return `"${path}" is a folder (${inside.length} files); use {"op":"list","path":"${path}"}.`;
    return `No file "${path}"; use {"op":"list"} to see the files.`;
  }

  /** Sets a file's content, checking the limits first so a refused write changes nothing. */
  set(path: string, content: string): void {
    const old = this.#files.get(path);
    if (content.length > LIMITS.fileBytes) throw `"${path}" would be ${content.length} characters; a file may hold at most ${LIMITS.fileBytes}.`;
    if (old === undefined) {
      if (this.#files.size >= LIMITS.files) throw `The workspace already holds ${LIMITS.files} files, the most it can; delete some first.`;
      const clash = this.paths().find((p) => p.startsWith(`${path}/`) || path.startsWith(`${p}/`));
      if (clash) throw `Cannot create "${path}": "${clash}" exists, and a path cannot be both a file and a folder.`;
    }
    const total = this.#total - (old?.length ?? 0) + content.length;
    if (total > LIMITS.totalBytes) throw `The workspace would hold ${total} characters; the limit is ${LIMITS.totalBytes}. Delete or shorten files first.`;
    this.#files.set(path, content);
    this.#total = total;
  }

  delete(path: string): void {
    const old = this.#files.get(path);
    if (old === undefined) throw this.missing(path);
    this.#files.delete(path);
    this.#total -= old.length;
  }

  write(path: string, content: string, append: boolean): unknown {
    const old = this.#files.get(path);
    const next = append ? (old ?? '') + content : content;
    this.set(path, next);
    return { path, created: old === undefined, characters: next.length, lines: lineCount(next) };
  }

  remove(path: string): unknown {
    this.delete(path);
    return { deleted: path };
  }

  move(from: string, to: string): unknown {
    const content = this.#files.get(from);
    if (content === undefined) throw this.missing(from);
    if (this.#files.has(to)) throw `"${to}" already exists; delete it first or choose another name.`;
    this.delete(from);
    try {
      this.set(to, content);
    } catch (err) {
      this.set(from, content);
      throw err;
    }
    return { moved: from, to };
  }

  list(dir: string, recursive: boolean): unknown {
    const prefix = dirPrefix(dir);
    const inside = this.paths().filter((p) => p.startsWith(prefix));
    if (prefix !== '' && inside.length === 0) {
      if (this.#files.has(prefix.slice(0, -1))) throw `"${prefix.slice(0, -1)}" is a file; use {"op":"read"}.`;
      throw `No folder "${prefix.slice(0, -1)}"; use {"op":"list"} to see the files.`;
    }
    const entries: { path: string; size?: number; files?: number }[] = [];
    if (recursive) {
      for (const p of inside) entries.push({ path: p, size: this.#files.get(p)!.length });
    } else {
      const folders = new Map<string, number>();
      for (const p of inside) {
        const rest = p.slice(prefix.length);
        const slash = rest.indexOf('/');
        if (slash === -1) entries.push({ path: p, size: this.#files.get(p)!.length });
        else folders.set(prefix + rest.slice(0, slash + 1), (folders.get(prefix + rest.slice(0, slash + 1)) ?? 0) + 1);
      }
      for (const [path, files] of folders) entries.push({ path, files });
      entries.sort((a, b) => (a.path < b.path ? -1 : 1));
    }
    const shown = entries.slice(0, LIMITS.listEntries);
    return { path: prefix === '' ? '/' : prefix, total: entries.length, entries: shown, ...(shown.length < entries.length ? { truncated: true } : {}) };
  }

  grep(o: GrepOptions): unknown {
    let re: RegExp;
    try {
      re = new RegExp(o.regex ? o.pattern : o.pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), o.ignoreCase ? 'i' : '');
    } catch (err) {
      throw `"pattern" is not a valid regular expression: ${err instanceof Error ? err.message : String(err)}.`;
    }
    const prefix = o.path === '' ? '' : normalizePath(o.path);
    const scope = this.paths().filter((p) => prefix === '' || p === prefix || p.startsWith(`${prefix}/`));
    if (prefix !== '' && scope.length === 0) throw this.missing(prefix);
    const matches: { path: string; line: number; text: string }[] = [];
    let truncated = false;
    for (const path of scope) {
      const lines = this.#files.get(path)!.split('\n');
      for (let i = 0; i < lines.length; i++) {
        if (!re.test(lines[i]!)) continue;
        if (matches.length >= o.maxResults) { truncated = true; break; }
        const text = lines[i]!;
        matches.push({ path, line: i + 1, text: text.length > 240 ? `${text.slice(0, 240)}…` : text });
      }
      if (truncated) break;
    }
    return { matches, ...(truncated ? { truncated: true } : {}) };
  }
}

export function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}
