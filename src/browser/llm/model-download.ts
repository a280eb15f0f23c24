/**
 * GGUF downloads for wllama, cached in the origin-private file system (OPFS): a model is fetched once, with
 * progress, and kept as a file (never held whole in memory). An interrupted download keeps its bytes and resumes
 * with an HTTP Range request; a server that ignores Range restarts it, and says so in the progress. A finished
 * file is checked with the GGUF checker before it is cached, and a cached file that fails the check (evicted,
 * truncated) is dropped and fetched again.
 */
import { FerryError, isFerryError } from '../../core/errors.ts';
import { blobReader, checkGguf } from '../../core/llm/gguf/index.ts';

export interface DownloadProgress {
  readonly url: string;
  readonly loaded: number;
  /** Undefined when the server does not say. */
  readonly total: number | undefined;
  readonly phase: 'cached' | 'downloading' | 'resuming' | 'restarted' | 'checking' | 'done';
}

export interface DownloadOptions {
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly signal?: AbortSignal;
  /** For tests and custom transports; default globalThis.fetch. */
  readonly fetch?: typeof fetch;
  /** OPFS folder; default 'ferry-models'. */
  readonly folder?: string;
}

export async function downloadModel(url: string, options: DownloadOptions = {}): Promise<File> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const report = options.onProgress ?? (() => undefined);
  const dir = await modelsFolder(options.folder ?? 'ferry-models');
  const key = await urlKey(url);
  const name = `${key}.gguf`;

  const cached = await existingFile(dir, name);
  if (cached) {
    if (await isValidModel(cached)) {
      report({ url, loaded: cached.size, total: cached.size, phase: 'cached' });
      return cached;
    }
    await dir.removeEntry(name); // evicted or damaged: fetch it again
  }

  const partName = `${key}.part`;
  const part = await dir.getFileHandle(partName, { create: true });
  let offset = (await part.getFile()).size;
  let response: Response;
  try {
    response = await doFetch(url, { ...(offset > 0 ? { headers: { Range: `bytes=${offset}-` } } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  } catch (cause) {
    if (options.signal?.aborted) throw cancelled(url, offset);
    throw new FerryError('model/unreachable', `Could not fetch the model from ${url}: ${(cause as Error).message ?? String(cause)}. Check the address and the connection${offset > 0 ? `; the ${offset} bytes already downloaded are kept and the download resumes from there` : ''}.`, { cause, details: { url, kept: offset } });
  }
  if (response.status === 416 && offset > 0) {
    // The part is already whole (or longer than the file): check it as it is.
    response.body?.cancel().catch(() => undefined);
    return finish(dir, part, partName, name, url, report);
  }
  if (!response.ok) {
    response.body?.cancel().catch(() => undefined);
    throw new FerryError('model/download-failed', `The server refused the model download (${url}): HTTP ${response.status} ${response.statusText}. Check the model's address.`, { details: { url, status: response.status } });
  }
  const resumed = response.status === 206 && offset > 0;
  const phase = offset > 0 ? (resumed ? 'resuming' : 'restarted') : 'downloading';
  if (!resumed) offset = 0;
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? offset + length : undefined;

  const writable = await part.createWritable({ keepExistingData: resumed });
  let loaded = offset;
  try {
    if (resumed) await writable.seek(offset);
    else await writable.truncate(0);
    report({ url, loaded, total, phase });
    const reader = response.body?.getReader();
    if (!reader) throw new FerryError('model/download-failed', `The server sent no body for ${url}.`);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await writable.write(value);
      loaded += value.length;
      report({ url, loaded, total, phase: 'downloading' });
    }
  } catch (cause) {
    await writable.close().catch(() => undefined); // keep what arrived: the next call resumes from it
    if (options.signal?.aborted) throw cancelled(url, loaded);
    if (isFerryError(cause)) throw cause;
    if (cause instanceof DOMException && cause.name === 'QuotaExceededError') {
      throw new FerryError('model/storage-full', `There is no room left in this browser's storage for the model (${loaded} bytes stored so far). Free space (other models, site data) and try again.`, { cause });
    }
    throw new FerryError('model/download-interrupted', `The model download from ${url} broke off after ${loaded} bytes: ${(cause as Error).message ?? String(cause)}. Try again: it resumes from there.`, { cause, details: { url, kept: loaded } });
  }
  await writable.close();
  if (total !== undefined && loaded !== total) {
    throw new FerryError('model/download-interrupted', `The model download from ${url} ended after ${loaded} of ${total} bytes. Try again: it resumes from there.`, { details: { url, kept: loaded, total } });
  }
  return finish(dir, part, partName, name, url, report);
}

/** Removes a cached model (and any partial download of it). */
export async function forgetModel(url: string, folder = 'ferry-models'): Promise<void> {
  const dir = await modelsFolder(folder);
  const key = await urlKey(url);
  for (const name of [`${key}.gguf`, `${key}.part`]) await dir.removeEntry(name).catch(() => undefined);
}

async function finish(
  dir: FileSystemDirectoryHandle,
  part: FileSystemFileHandle,
  partName: string,
  name: string,
  url: string,
  report: (p: DownloadProgress) => void,
): Promise<File> {
  const file = await part.getFile();
  report({ url, loaded: file.size, total: file.size, phase: 'checking' });
  try {
    const info = await checkGguf(blobReader(file));
    if (info.fileSize !== file.size) throw new FerryError('gguf/truncated', `The downloaded model is ${file.size} bytes but its header describes ${info.fileSize}.`);
  } catch (cause) {
    await dir.removeEntry(partName).catch(() => undefined); // a bad file is not worth resuming
    throw isFerryError(cause)
      ? new FerryError(cause.code, `The file at ${url} is not a usable model: ${cause.message}`, { cause, ...(cause.details ? { details: { ...cause.details } } : {}) })
      : cause;
  }
  await (part as FileSystemFileHandle & { move(dir: FileSystemDirectoryHandle, name: string): Promise<void> }).move(dir, name);
  const done = await (await dir.getFileHandle(name)).getFile();
  report({ url, loaded: done.size, total: done.size, phase: 'done' });
  return done;
}

async function isValidModel(file: File): Promise<boolean> {
  try {
    return (await checkGguf(blobReader(file))).fileSize === file.size;
  } catch {
    return false;
  }
}

async function existingFile(dir: FileSystemDirectoryHandle, name: string): Promise<File | undefined> {
  try {
    return await (await dir.getFileHandle(name)).getFile();
  } catch {
    return undefined;
  }
}

async function modelsFolder(folder: string): Promise<FileSystemDirectoryHandle> {
  if (!globalThis.navigator?.storage?.getDirectory) {
    throw new FerryError('model/no-storage', 'This browser has no origin-private file system, so models cannot be cached. Use a current Chromium, Firefox or Safari.');
  }
  return (await navigator.storage.getDirectory()).getDirectoryHandle(folder, { create: true });
}

async function urlKey(url: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url)));
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

function cancelled(url: string, kept: number): FerryError {
  return new FerryError('model/download-cancelled', `The model download from ${url} was cancelled; the ${kept} bytes already downloaded are kept for next time.`, { details: { url, kept } });
}
