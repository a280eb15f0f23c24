import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import type { GgufModelInfo } from '../../src/core/llm/gguf/index.ts';
import { checkModelFile } from './load-native.ts';
import { fileSha256 } from './file-hash.ts';

/**
 * Where a model comes from: a local path, an http(s) URL, or `hf:<owner>/<repo>[@<revision>]/<file.gguf>` (a
 * Hugging Face file, fetched from its resolve URL). Remote files are downloaded once into the data folder with
 * progress, resumed after an interruption (HTTP Range), and checked as GGUF before they are used.
 */
export type ModelSource =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'hf'; readonly url: string; readonly repo: string; readonly file: string; readonly revision: string };

export interface ResolvedModel {
  readonly path: string;
  /** Hex SHA-256 of the file (pass it to the engine as modelSha256 to skip hashing again). */
  readonly sha256: string;
  readonly info: GgufModelInfo;
  readonly source: ModelSource;
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
}

export function parseModelSource(spec: string): ModelSource {
  if (spec.startsWith('hf:')) {
    const match = /^hf:([\w.-]+)\/([\w.-]+)(?:@([\w./-]+?))?\/(.+\.gguf)$/.exec(spec);
    if (!match) {
      throw new FerryError('models/bad-source', `"${spec}" is not a Hugging Face model reference; write hf:<owner>/<repo>/<file.gguf> or hf:<owner>/<repo>@<revision>/<file.gguf>.`);
    }
    const [, owner, repo, revision = 'main', file] = match as unknown as [string, string, string, string | undefined, string];
    if (file.split('/').some((part) => part === '..' || part === '')) throw new FerryError('models/bad-source', `"${spec}" has an invalid file path.`);
    const url = `https://huggingface.co/${owner}/${repo}/resolve/${encodeURIComponent(revision)}/${file.split('/').map(encodeURIComponent).join('/')}`;
    return { kind: 'hf', url, repo: `${owner}/${repo}`, file, revision };
  }
  if (/^https?:\/\//i.test(spec)) {
    try {
      return { kind: 'url', url: new URL(spec).toString() };
    } catch (cause) {
      throw new FerryError('models/bad-source', `"${spec}" is not a valid URL.`, { cause });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) throw new FerryError('models/bad-source', `"${spec}": only local paths, http(s) URLs and hf: references are supported.`);
  return { kind: 'path', path: spec };
}

/** A usable local file for `spec`: downloaded (or resumed) when remote, always checked as GGUF. */
export async function resolveModel(spec: string, options: ResolveOptions): Promise<ResolvedModel> {
  const source = parseModelSource(spec);
  if (source.kind === 'path') {
    const file = path.resolve(source.path);
    const found = await stat(file).catch(() => undefined);
    if (!found?.isFile()) throw new FerryError('models/not-found', `There is no model file at ${file}. Check the path.`, { details: { path: file } });
    const info = await checkModelFile(file);
    return { path: file, sha256: await fileSha256(file), info, source };
  }
  const dir = path.join(options.dataDir, 'models');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, downloadName(source.url));
  if (!(await stat(file).catch(() => undefined))) {
    await download(source, `${file}.part`, options);
    try {
      await checkModelFile(`${file}.part`);
    } catch (err) {
      // Not a model: nothing of it is kept (a resumed download of it would be just as bad).
      await rm(`${file}.part`, { force: true });
      throw err;
    }
    await rename(`${file}.part`, file);
  }
  return { path: file, sha256: await fileSha256(file), info: await checkModelFile(file), source };
}

/** A stable, readable local name: a hash of the URL (no collisions) plus the file's own name. */
function downloadName(url: string): string {
  const base = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '').replace(/[^\w.-]/g, '_') || 'model.gguf';
  return `${createHash('sha256').update(url).digest('hex').slice(0, 16)}-${base.endsWith('.gguf') ? base : `${base}.gguf`}`;
}

async function download(source: Exclude<ModelSource, { kind: 'path' }>, part: string, options: ResolveOptions): Promise<void> {
  const have = (await stat(part).catch(() => undefined))?.size ?? 0;
  const headers: Record<string, string> = have > 0 ? { range: `bytes=${have}-` } : {};
  if (source.kind === 'hf' && options.hfToken) headers.authorization = `Bearer ${options.hfToken}`;
  let response: Response;
  try {
    response = await fetch(source.url, { headers, redirect: 'follow', ...(options.signal ? { signal: options.signal } : {}) });
  } catch (cause) {
    if (options.signal?.aborted) throw new FerryError('models/cancelled', `The download of ${source.url} was cancelled; it resumes next time.`, { cause });
    throw new FerryError('models/download-failed', `Cannot download the model from ${source.url}: ${(cause as Error).message}. It resumes where it stopped when tried again.`, { cause });
  }
  if (response.status === 416 && have > 0) {
    // The part is already whole (or stale): start over rather than guess.
    await rm(part, { force: true });
    await response.body?.cancel();
    return download(source, part, options);
  }
  if (!response.ok || !response.body) {
    throw new FerryError('models/download-failed', `Downloading ${source.url} failed: HTTP ${response.status}${response.status === 401 || response.status === 403 ? ' (a gated model needs an access token)' : ''}.`, {
      details: { status: response.status },
    });
  }
  // 206: the server continues our part; 200: it ignored the range, so the part starts again from zero.
  const resumedFrom = response.status === 206 ? have : 0;
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? resumedFrom + length : undefined;
  const out = createWriteStream(part, { flags: resumedFrom > 0 ? 'a' : 'w' });
  let received = resumedFrom;
  options.onProgress?.({ received, total, resumedFrom });
  try {
    const reader = response.body.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      const chunk = next.value;
      await new Promise<void>((resolve, reject) => out.write(chunk, (err) => (err ? reject(err) : resolve())));
      received += chunk.length;
      options.onProgress?.({ received, total, resumedFrom });
    }
  } catch (cause) {
    throw new FerryError(options.signal?.aborted ? 'models/cancelled' : 'models/download-failed', `The download of ${source.url} stopped at ${received} bytes: ${(cause as Error).message}. It resumes where it stopped when tried again.`, {
      cause,
      details: { received },
    });
  } finally {
    await new Promise<void>((resolve) => out.end(resolve));
  }
  if (total !== undefined && received !== total) {
    throw new FerryError('models/download-failed', `The download of ${source.url} ended at ${received} of ${total} bytes. It resumes where it stopped when tried again.`, { details: { received, total } });
  }
}
