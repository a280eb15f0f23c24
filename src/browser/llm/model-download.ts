/**
 * GGUF downloads for wllama, cached in the origin-private file system (OPFS): a model is fetched once, with
 * progress, and kept as files (never held whole in memory).
 *
 * A download is stored as segments, `<key>/<offset>.part`, each written and closed in turn: an OPFS writable commits
 * only when it closes, so a page closed or reloaded mid-download keeps every closed segment and loses at most the
 * one being written. The next call resumes from the end of the segments with an HTTP Range request (a server that
 * ignores Range restarts it, and the progress says so). When the size and SHA-256 are known (a catalog model, a
 * relay's content-addressed file), the browser's free quota is checked before a byte is fetched, a response of
 * another size is refused, and the finished file must hash to the SHA-256 — a file that does not is removed. A
 * finished file is checked as GGUF, then marked done (`<key>/done.json`, written last); a cached model that no
 * longer checks out (evicted, damaged) is dropped and fetched again. The model is handed out as one File made of
 * the segments (no copy).
 */
import { createSHA256 } from 'hash-wasm';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { blobReader, checkGguf } from '../../core/llm/gguf/index.ts';
import { assemble, clear, existingFile, markDone, modelsFolder, MODELS_FOLDER, readDone, segmentName, stateOf, storedSegments, type DownloadState } from './model-folder.ts';

export interface DownloadProgress {
  readonly url: string;
  readonly loaded: number;
  /** Undefined when neither the caller nor the server says. */
  readonly total: number | undefined;
  /** Bytes committed to storage: what a reload now would keep. */
  readonly stored: number;
  readonly phase: 'cached' | 'downloading' | 'resuming' | 'restarted' | 'checking' | 'done';
}

/** What the file must be, when known: its size and SHA-256 (hex). */
export interface ExpectedFile {
  readonly bytes: number;
  readonly sha256: string;
}

export interface DownloadOptions {
  readonly onProgress?: (progress: DownloadProgress) => void;
  readonly signal?: AbortSignal;
  readonly expected?: ExpectedFile;
  /** For tests and custom transports; default globalThis.fetch. */
  readonly fetch?: typeof fetch;
  /** OPFS folder; default 'ferry-models'. */
  readonly folder?: string;
  /** Bytes per committed segment (at most what a reload loses); default 16 MiB. */
  readonly segmentBytes?: number;
}

const SEGMENT_BYTES = 16 << 20;

export async function downloadModel(url: string, options: DownloadOptions = {}): Promise<File> {
  const root = await modelsFolder(options.folder ?? MODELS_FOLDER);
  const key = await urlKey(url);
  // One download of a file at a time, across tabs: a second caller waits, then finds it cached.
  const locks = globalThis.navigator?.locks;
  const run = () => download(root, key, url, options);
  if (!locks) return run();
  return locks.request(`ferry-model-${key}`, options.signal ? { signal: options.signal } : {}, run).catch((err: unknown) => {
    // Cancelled while another tab's download of the same file held the lock.
    throw options.signal?.aborted && !isFerryError(err) ? cancelled(url, 0) : err;
  });
}

async function download(root: FileSystemDirectoryHandle, key: string, url: string, options: DownloadOptions): Promise<File> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  const report = options.onProgress ?? (() => undefined);
  const expected = options.expected;

  const cached = await cachedModel(root, key, expected);
  if (cached) {
    report({ url, loaded: cached.size, total: cached.size, stored: cached.size, phase: 'cached' });
    return cached;
  }
  // Files of the earlier single-file layout are superseded by this download.
  for (const old of [`${key}.gguf`, `${key}.part`]) await root.removeEntry(old).catch(() => undefined);
  const dir = await root.getDirectoryHandle(key, { create: true });
  let segments = await storedSegments(dir);
  let offset = segments.reduce((n, s) => n + s.size, 0);
  if (expected && offset > expected.bytes) {
    await clear(dir);
    segments = [];
    offset = 0;
  }
  if (expected) await checkQuota(expected.bytes - offset, url, offset);

  let response: Response;
  try {
    response = await doFetch(url, { ...(offset > 0 ? { headers: { Range: `bytes=${offset}-` } } : {}), ...(options.signal ? { signal: options.signal } : {}) });
  } catch (cause) {
    if (options.signal?.aborted) throw cancelled(url, offset);
    throw new FerryError('model/unreachable', `Could not fetch the model from ${url}: ${(cause as Error).message ?? String(cause)}. Check the address and the connection${offset > 0 ? `; the ${offset} bytes already downloaded are kept and the download resumes from there` : ''}.`, { cause, details: { url, kept: offset } });
  }
  if (response.status === 416 && offset > 0) {
    // What is stored is already whole (or longer than the file): check it as it is.
    response.body?.cancel().catch(() => undefined);
    return finish(root, dir, key, url, await hashSegments(await storedSegments(dir)), expected, report);
  }
  if (!response.ok || !response.body) {
    response.body?.cancel().catch(() => undefined);
    throw new FerryError('model/download-failed', `The server refused the model download (${url}): HTTP ${response.status} ${response.statusText}. Check the model's address.`, { details: { url, status: response.status } });
  }
  const resumed = response.status === 206 && offset > 0;
  const phase = offset > 0 ? (resumed ? 'resuming' : 'restarted') : 'downloading';
  if (!resumed && offset > 0) {
    await clear(dir);
    segments = [];
    offset = 0;
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) ? offset + length : expected?.bytes;
  if (expected && Number.isFinite(length) && total !== expected.bytes) {
    response.body.cancel().catch(() => undefined);
    await root.removeEntry(key, { recursive: true }).catch(() => undefined);
    throw sizeMismatch(url, expected, `${total}`);
  }
  // Without a known size the room can only be checked once the server says how much is coming.
  if (!expected && total !== undefined) {
    await checkQuota(total - offset, url, offset).catch((err: unknown) => {
      response.body?.cancel().catch(() => undefined);
      throw err;
    });
  }

  const hasher = resumed ? await hashSegments(segments) : await createSHA256();
  const reader = response.body.getReader();
  const segmentBytes = options.segmentBytes ?? SEGMENT_BYTES;
  let loaded = offset;
  let writer: { stream: FileSystemWritableFileStream; written: number } | undefined;
  try {
    report({ url, loaded, total, stored: offset, phase });
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (expected && loaded + value.length > expected.bytes) throw sizeMismatch(url, expected, `more than ${expected.bytes}`);
      hasher.update(value);
      for (let at = 0; at < value.length; ) {
        writer ??= { stream: await (await dir.getFileHandle(segmentName(loaded), { create: true })).createWritable(), written: 0 };
        const piece = value.subarray(at, at + (segmentBytes - writer.written));
        await writer.stream.write(piece);
        writer.written += piece.length;
        loaded += piece.length;
        at += piece.length;
        if (writer.written >= segmentBytes) {
          await writer.stream.close();
          writer = undefined;
          offset = loaded;
        }
      }
      report({ url, loaded, total, stored: offset, phase: 'downloading' });
    }
    if (writer) await writer.stream.close();
    writer = undefined;
  } catch (cause) {
    // Keep what arrived (closing commits it): the next call resumes from there.
    if (writer) await writer.stream.close().catch(() => undefined);
    if (isFerryError(cause, 'model/size-mismatch')) {
      await root.removeEntry(key, { recursive: true }).catch(() => undefined);
      throw cause;
    }
    if (options.signal?.aborted) throw cancelled(url, loaded);
    if (isFerryError(cause)) throw cause;
    if (cause instanceof DOMException && cause.name === 'QuotaExceededError') {
      throw new FerryError('model/storage-full', `There is no room left in this browser's storage for the model (${loaded} bytes stored so far). Free space (other models, site data) and try again.`, { cause });
    }
    throw new FerryError('model/download-interrupted', `The model download from ${url} broke off after ${loaded} bytes: ${(cause as Error).message ?? String(cause)}. Try again: it resumes from there.`, { cause, details: { url, kept: loaded } });
  }
  if (total !== undefined && loaded !== total) {
    throw new FerryError('model/download-interrupted', `The model download from ${url} ended after ${loaded} of ${total} bytes. Try again: it resumes from there.`, { details: { url, kept: loaded, total } });
  }
  return finish(root, dir, key, url, hasher, expected, report);
}

/** Where the download of `url` stands: whole and checked, partly stored (it resumes), or not here. */
export async function downloadState(url: string, folder = MODELS_FOLDER): Promise<DownloadState> {
  return stateOf(await modelsFolder(folder), await urlKey(url));
}

/** Removes a cached model (and any partial download of it). */
export async function forgetModel(url: string, folder = MODELS_FOLDER): Promise<void> {
  const root = await modelsFolder(folder);
  const key = await urlKey(url);
  await root.removeEntry(key, { recursive: true }).catch(() => undefined);
  for (const name of [`${key}.gguf`, `${key}.part`]) await root.removeEntry(name).catch(() => undefined);
}

type Hasher = Awaited<ReturnType<typeof createSHA256>>;

async function finish(
  root: FileSystemDirectoryHandle,
  dir: FileSystemDirectoryHandle,
  key: string,
  url: string,
  hasher: Hasher,
  expected: ExpectedFile | undefined,
  report: (p: DownloadProgress) => void,
): Promise<File> {
  const file = await assemble(dir, key);
  report({ url, loaded: file.size, total: file.size, stored: file.size, phase: 'checking' });
  const sha256 = hasher.digest('hex');
  try {
    if (expected && sha256 !== expected.sha256) {
      throw new FerryError('model/checksum-mismatch', `The file downloaded from ${url} is not the expected model: its SHA-256 is ${sha256}, not ${expected.sha256}. It was removed; try again, and if it persists the file at that address has changed.`, {
        details: { url, expected: expected.sha256, actual: sha256 },
      });
    }
    const info = await checkGguf(blobReader(file));
    if (info.fileSize !== file.size) throw new FerryError('gguf/truncated', `The downloaded model is ${file.size} bytes but its header describes ${info.fileSize}.`);
  } catch (cause) {
    await root.removeEntry(key, { recursive: true }).catch(() => undefined); // a bad file is not worth resuming
    if (!isFerryError(cause) || cause.code.startsWith('model/')) throw cause;
    throw new FerryError(cause.code, `The file at ${url} is not a usable model: ${cause.message}`, { cause, ...(cause.details ? { details: { ...cause.details } } : {}) });
  }
  // The marker goes last: only a checked file is ever taken from the cache.
  await markDone(dir, { url, bytes: file.size, sha256 });
  report({ url, loaded: file.size, total: file.size, stored: file.size, phase: 'done' });
  return file;
}

/** The cached model when it is whole and still checks out; anything else of it is dropped. */
async function cachedModel(root: FileSystemDirectoryHandle, key: string, expected: ExpectedFile | undefined): Promise<File | undefined> {
  const dir = await root.getDirectoryHandle(key).catch(() => undefined);
  if (!dir) {
    // A model cached by an earlier version, as one file; without a known size it is trusted if it checks as GGUF.
    const single = await existingFile(root, `${key}.gguf`);
    if (single && !expected && (await isValidModel(single))) return single;
    return undefined;
  }
  const done = await readDone(dir);
  if (!done) return undefined;
  const file = await assemble(dir, key);
  if (file.size === done.bytes && (!expected || (expected.sha256 === done.sha256 && expected.bytes === done.bytes)) && (await isValidModel(file))) return file;
  await root.removeEntry(key, { recursive: true }); // evicted, damaged or superseded: fetch it again
  return undefined;
}

async function hashSegments(segments: readonly File[]): Promise<Hasher> {
  const hasher = await createSHA256();
  for (const s of segments) {
    const reader = s.stream().getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) hasher.update(next.value);
  }
  return hasher;
}

/** Refuses, before anything is fetched, a download the browser's storage quota has no room for. */
async function checkQuota(needed: number, url: string, kept: number): Promise<void> {
  const estimate = await globalThis.navigator?.storage?.estimate?.().catch(() => undefined);
  if (estimate?.quota === undefined || estimate.usage === undefined) return;
  const free = estimate.quota - estimate.usage;
  if (needed > free) {
    throw new FerryError('model/storage-full', `This model needs ${formatMb(needed)} more of this browser's storage, and only ${formatMb(free)} is free for this site. Free space (delete other models or site data, or free disk space) and try again${kept > 0 ? `; the ${formatMb(kept)} already downloaded are kept` : ''}. Nothing was downloaded for it now.`, {
      details: { url, needed, free },
    });
  }
}

function sizeMismatch(url: string, expected: ExpectedFile, sent: string): FerryError {
  return new FerryError('model/size-mismatch', `The server sends ${sent} bytes for ${url}, but the model is ${expected.bytes} bytes: that address no longer holds this model. Nothing of it was kept.`, {
    details: { url, expected: expected.bytes },
  });
}

async function isValidModel(file: File): Promise<boolean> {
  try {
    return (await checkGguf(blobReader(file))).fileSize === file.size;
  } catch {
    return false;
  }
}

const formatMb = (bytes: number): string => `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`;

async function urlKey(url: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(url)));
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

function cancelled(url: string, kept: number): FerryError {
  return new FerryError('model/download-cancelled', `The model download from ${url} was cancelled; the ${kept} bytes already downloaded are kept for next time.`, { details: { url, kept } });
}
