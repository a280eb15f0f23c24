import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import { CATALOG_NAME, DEMO_MODEL, ModelCatalog, parseCatalog, type CatalogEntry } from '../../src/core/llm/catalog.ts';
import type { GgufModelInfo } from '../../src/core/llm/gguf/index.ts';
import { checkModelFile } from './load-native.ts';
import { fileSha256 } from './file-hash.ts';
import { ensureDemoModel } from './demo-model.ts';

/**
 * Where a model comes from: a catalog name (src/core/llm/catalog.ts), `demo` (the generated demo model), a local
 * path, an http(s) URL, or `hf:<owner>/<repo>[@<revision>]/<file.gguf>` (a Hugging Face file, fetched from its
 * resolve URL). Remote files are downloaded once into the data folder with progress, resumed after an interruption
 * (HTTP Range), and checked as GGUF before they are used; a catalog model is also checked for room on the disk
 * before it starts, and for its size and SHA-256 before it is kept.
 */
export type ModelSource =
  | { readonly kind: 'catalog'; readonly url: string; readonly entry: CatalogEntry }
  | { readonly kind: 'demo' }
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'hf'; readonly url: string; readonly repo: string; readonly file: string; readonly revision: string };

type RemoteSource = Extract<ModelSource, { url: string }>;

export interface ResolvedModel {
  readonly path: string;
  /** Hex SHA-256 of the file (pass it to the engine as modelSha256 to skip hashing again). */
  readonly sha256: string;
  readonly info: GgufModelInfo;
  readonly source: ModelSource;
  /** How people know it: the catalog name, `demo`, or the file's own name. */
  readonly name: string;
  /** A longer description for lists ("Qwen2.5 0.5B Instruct, Q4_K_M"). */
  readonly label: string;
}

export interface DownloadProgress {
  readonly received: number;
  /** Undefined when the server does not say. */
  readonly total: number | undefined;
  /** Bytes that were already on disk from an interrupted download. */
  readonly resumedFrom: number;
}

export interface ResolveOptions {
  /** The data folder; downloads go to <dataDir>/models. */
  readonly dataDir: string;
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly signal?: AbortSignal;
  /** Hugging Face access token for gated repositories. */
  readonly hfToken?: string;
  /** The catalog that names resolve in; default the built-in one. */
  readonly catalog?: ModelCatalog;
}

export function parseModelSource(spec: string, catalog = new ModelCatalog()): ModelSource {
  if (spec === DEMO_MODEL.name) return { kind: 'demo' };
  // A bare name (no slash, no .gguf) is a catalog name, never a file in the current folder.
  if (CATALOG_NAME.test(spec) && !spec.endsWith('.gguf')) {
    const entry = catalog.require(spec);
    return { kind: 'catalog', url: entry.url, entry };
  }
  if (spec.startsWith('hf:')) {
    const match = /^hf:([\w.-]+)\/([\w.-]+)(?:@([\w./-]+?))?\/(.+\.gguf)$/.exec(spec);
    if (!match) {
      throw new FerryError('model/bad-source', `"${spec}" is not a Hugging Face model reference; write hf:<owner>/<repo>/<file.gguf> or hf:<owner>/<repo>@<revision>/<file.gguf>.`);
    }
    const [, owner, repo, revision = 'main', file] = match as unknown as [string, string, string, string | undefined, string];
    if (file.split('/').some((part) => part === '..' || part === '')) throw new FerryError('model/bad-source', `"${spec}" has an invalid file path.`);
    const url = `https://huggingface.co/${owner}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
    return { kind: 'hf', url, repo: `${owner}/${repo}`, file, revision };
  }
  if (/^https?:\/\//i.test(spec)) {
    try {
      return { kind: 'url', url: new URL(spec).toString() };
    } catch (cause) {
      throw new FerryError('model/bad-source', `"${spec}" is not a valid URL.`, { cause });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new FerryError('model/bad-source', `"${spec}": only local paths, http(s) URLs and hf: references are supported.`);
  return { kind: 'path', path: spec };
}

/** A usable local file for `spec`: downloaded (or resumed) when remote, always checked as GGUF. */
export async function resolveModel(spec: string, options: ResolveOptions): Promise<ResolvedModel> {
  const source = parseModelSource(spec, options.catalog);
  if (source.kind === 'demo') {
    const demo = await ensureDemoModel(options.dataDir).catch((cause: unknown) => {
      throw new FerryError('config/data-dir', `Cannot write the demo model into ${options.dataDir}: choose a writable folder with --data or FERRY_DATA.`, { cause });
    });
    return { path: demo.path, sha256: await fileSha256(demo.path), info: await checkModelFile(demo.path), source, name: DEMO_MODEL.name, label: DEMO_MODEL.label };
  }
  if (source.kind === 'path') {
    const file = path.resolve(source.path);
    const found = await stat(file).catch(() => undefined);
    if (!found?.isFile()) throw new FerryError('model/not-found', `There is no model file at ${file}. Check the path (\`ferry models\` lists the catalog's models, which --model also takes by name).`, { details: { path: file } });
    const info = await checkModelFile(file);
    return { path: file, sha256: await fileSha256(file), info, source, name: path.basename(file), label: path.basename(file) };
  }
  const dir = path.join(options.dataDir, 'models');
  await mkdir(dir, { recursive: true });
  const entry = source.kind === 'catalog' ? source.entry : undefined;
  const file = path.join(dir, entry ? catalogFileName(entry) : downloadName(source.url));
  const have = await stat(file).catch(() => undefined);
  // A catalog file is kept only once its SHA-256 matched, so the right size is enough to trust it again.
  if (!have || (entry && have.size !== entry.bytes)) {
    if (have) await rm(file, { force: true });
    const part = `${file}.part`;
    await download(source, part, options);
    try {
      if (entry) await checkDigest(part, entry);
      await checkModelFile(part);
    } catch (err) {
      // Not the model: nothing of it is kept (a resumed download of it would be just as bad).
      await rm(part, { force: true });
      throw err;
    }
    await rename(part, file);
  }
  const info = await checkModelFile(file);
  const name = entry?.name ?? remoteFileName(source.url);
  return { path: file, sha256: entry?.sha256 ?? (await fileSha256(file)), info, source, name, label: entry ? `${entry.label}, ${entry.quantization}` : name };
}

/** Where a catalog model lives in <data>/models: named by its content, so a mirror's copy is the same file. */
export function catalogFileName(entry: CatalogEntry): string {
  return `${entry.sha256.slice(0, 16)}-${remoteFileName(entry.url)}`;
}

/** A deployment's own catalog entries (`--catalog FILE`, a JSON list), checked. */
export async function loadCatalog(file: string): Promise<ModelCatalog> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (cause) {
    throw new FerryError('model/bad-catalog', `Cannot read the model catalog ${file}: ${(cause as Error).message}. Give a JSON file with a list of entries (--catalog or FERRY_CATALOG).`, { cause });
  }
  return ModelCatalog.with(parseCatalog(json, file));
}

async function checkDigest(file: string, entry: CatalogEntry): Promise<void> {
  const sha256 = await fileSha256(file);
  if (sha256 !== entry.sha256) {
    throw new FerryError('model/checksum-mismatch', `The download of ${entry.name} from ${entry.url} is not the catalog's file: its SHA-256 is ${sha256}, not ${entry.sha256}. It was removed; try again, and if it persists the file at that address has changed.`, {
      details: { name: entry.name, expected: entry.sha256, actual: sha256 },
    });
  }
}

/** The file's own name in its URL, made safe for a file system. */
function remoteFileName(url: string): string {
  const base = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '').replace(/[^\w.-]/g, '_') || 'model.gguf';
  return base.endsWith('.gguf') ? base : `${base}.gguf`;
}

/** A stable, readable local name: a hash of the URL (no collisions) plus the file's own name. */
function downloadName(url: string): string {
  return `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${remoteFileName(url)}`;
}

async function download(source: RemoteSource, part: string, options: ResolveOptions): Promise<void> {
  const entry = source.kind === 'catalog' ? source.entry : undefined;
  let have = (await stat(part).catch(() => undefined))?.size ?? 0;
  if (entry && have > entry.bytes) {
    await rm(part, { force: true });
    have = 0;
  }
  if (entry) await checkRoom(path.dirname(part), entry, have);
  if (entry && have === entry.bytes) return; // whole already: the checks that follow decide
  const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-` } : {};
  if (source.kind === 'hf' && options.hfToken) headers.authorization = `Bearer ${options.hfToken}`;
  let response: Response;
  try {
    response = await fetch(source.url, { headers, redirect: 'follow', ...(options.signal ? { signal: options.signal } : {}) });
  } catch (cause) {
    if (options.signal?.aborted) throw new FerryError('model/download-cancelled', `The download of ${source.url} was cancelled; it resumes next time.`, { cause });
    throw new FerryError('model/download-failed', `Cannot download the model from ${source.url}: ${(cause as Error).message}. It resumes where it stopped when tried again.`, { cause });
  }
  if (response.status === 416 && have > 0) {
    // The part is already whole (or stale): start over rather than guess.
    await rm(part, { force: true });
    await response.body?.cancel();
    return download(source, part, options);
  }
  if (!response.ok || !response.body) {
    throw new FerryError('model/download-failed', `Downloading ${source.url} failed: HTTP ${response.status}${response.status === 401 || response.status === 403 ? ' (a gated model needs an access token)' : ''}.`, {
      details: { status: response.status },
    });
  }
  // 206: the server continues our part; 200: it ignored the range, so the part starts again from zero.
  const resumedFrom = response.status === 206 ? have : 0;
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? resumedFrom + length : undefined;
  if (entry && total !== undefined && total !== entry.bytes) {
    await response.body.cancel();
    throw sizeMismatch(entry, `${total}`);
  }
  const out = createWriteStream(part, { flags: resumedFrom > 0 ? 'a' : 'w' });
  let received = resumedFrom;
  options.onProgress?.({ received, total, resumedFrom });
  try {
    const reader = response.body.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      const chunk = next.value;
      if (entry && received + chunk.length > entry.bytes) {
        await reader.cancel();
        throw sizeMismatch(entry, `more than ${entry.bytes}`);
      }
      await new Promise<void>((resolve, reject) => out.write(chunk, (err) => (err ? reject(err) : resolve())));
      received += chunk.length;
      options.onProgress?.({ received, total, resumedFrom });
    }
  } catch (cause) {
    if (isFerryError(cause, 'model/size-mismatch')) {
      await new Promise<void>((resolve) => out.end(resolve));
      await rm(part, { force: true });
      throw cause;
    }
    throw new FerryError(options.signal?.aborted ? 'model/download-cancelled' : 'model/download-failed', `The download of ${source.url} stopped at ${received} bytes: ${(cause as Error).message}. It resumes where it stopped when tried again.`, {
      cause,
      details: { received },
    });
  } finally {
    if (!out.writableEnded) await new Promise<void>((resolve) => out.end(resolve));
  }
  if (total !== undefined && received !== total) {
    throw new FerryError('model/download-failed', `The download of ${source.url} ended at ${received} of ${total} bytes. It resumes where it stopped when tried again.`, { details: { received, total } });
  }
}

/** Refuses, before a byte is fetched, a catalog download the disk has no room for. */
async function checkRoom(dir: string, entry: CatalogEntry, have: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  const needed = entry.bytes - have;
  if (free < needed) {
    throw new FerryError('model/storage-full', `${entry.name} needs ${formatMb(needed)} more in ${dir}, which has ${formatMb(free)} free. Free some space, or point --data at a larger disk.`, {
      details: { name: entry.name, needed, free },
    });
  }
}

function sizeMismatch(entry: CatalogEntry, sent: string): FerryError {
  return new FerryError('model/size-mismatch', `The server sends ${sent} bytes for ${entry.name}, but the catalog's file is ${entry.bytes} bytes: the file at ${entry.url} is not the catalog's. Nothing of it was kept.`, {
    details: { name: entry.name, expected: entry.bytes },
  });
}

const formatMb = (bytes: number): string => `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;

export interface LocalModelStatus {
  readonly entry: CatalogEntry;
  /** Whole and checked; `partial` keeps an interrupted download's bytes, resumed by the next start. */
  readonly state: 'downloaded' | 'partial' | 'absent';
  /** Bytes on disk. */
  readonly bytes: number;
}

/** What `ferry models` shows: each catalog model and how much of it is in <data>/models, plus the other GGUF files there. */
export async function localModels(dataDir: string, catalog = new ModelCatalog()): Promise<{ catalog: LocalModelStatus[]; others: { name: string; bytes: number }[] }> {
  const dir = path.join(dataDir, 'models');
  const files = new Map<string, number>();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const found = await stat(path.join(dir, name)).catch(() => undefined);
    if (found?.isFile()) files.set(name, found.size);
  }
  const known = new Set<string>();
  const statuses = catalog.entries.map((entry): LocalModelStatus => {
    const name = catalogFileName(entry);
    known.add(name).add(`${name}.part`);
    const whole = files.get(name);
    if (whole === entry.bytes) return { entry, state: 'downloaded', bytes: whole };
    const part = files.get(`${name}.part`);
    return part !== undefined ? { entry, state: 'partial', bytes: part } : { entry, state: 'absent', bytes: 0 };
  });
  const others = [...files].filter(([name]) => !known.has(name) && name.endsWith('.gguf')).map(([name, bytes]) => ({ name, bytes }));
  return { catalog: statuses, others };
}
