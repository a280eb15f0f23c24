/**
 * Where this device's model comes from: a model of the catalog (src/core/llm/catalog.ts, fetched from its URL), a
 * GGUF the relay serves (GET /api/v2/models) — both downloaded with progress, resumable and checked by size and
 * SHA-256 into the OPFS cache by model-download.ts — or a GGUF the user picks from disk (checked, then copied into
 * the same cache so it survives a reload). Either way the agent worker gets a File backed by OPFS.
 */
import { createSHA256 } from 'hash-wasm';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { blobReader, checkGguf } from '../../core/llm/gguf/index.ts';
import { catalogPath, HostedModelListSchema, modelPaths, parseWire, type HostedModel } from '../../core/protocol/index.ts';
import { ModelCatalog, parseCatalog, type CatalogEntry } from '../../core/llm/catalog.ts';
import type { ModelChoice } from '../settings.ts';
import { downloadModel, downloadState, forgetModel, type DownloadOptions, type DownloadProgress } from './model-download.ts';
import { MODELS_FOLDER, type DownloadState } from './model-folder.ts';
import { insecurePageReason } from '../secure-context.ts';

const FOLDER = MODELS_FOLDER;

/** A catalog model and how much of it is on this device. */
export interface CatalogModelStatus extends DownloadState {
  readonly entry: CatalogEntry;
}

/**
 * The catalog of the relay this app uses: the built-in entries plus its deployment's own (a mirror on its network,
 * its own models). A relay that does not answer (offline, an older one) leaves the built-in catalog.
 */
export async function relayCatalog(relay: string): Promise<ModelCatalog> {
  try {
    const res = await fetch(`${relay}${catalogPath}`, { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return new ModelCatalog();
    const body = (await res.json()) as { models?: unknown };
    return new ModelCatalog(parseCatalog(body.models, `from the relay at ${relay}`));
  } catch {
    return new ModelCatalog();
  }
}

/** Every catalog model, with whether it is downloaded here, partly (an interrupted download: it resumes), or not. */
export async function listCatalogModels(catalog = new ModelCatalog()): Promise<CatalogModelStatus[]> {
  return Promise.all(catalog.entries.map(async (entry) => ({ entry, ...(await downloadState(entry.url).catch((): DownloadState => ({ state: 'absent', stored: 0 }))) })));
}

/** A catalog download under way: `done` is the choice to save once the model is whole and checked. */
export interface CatalogDownload {
  readonly done: Promise<ModelChoice>;
  /** Stops it; what arrived is kept for next time, and `done` rejects with model/download-cancelled. */
  cancel(): void;
}

/**
 * Downloads the catalog model `name` (or finds it cached): the browser's free quota is checked before anything is
 * fetched, an interrupted download (a dropped connection, a reload) resumes where it stopped, and the file must have
 * the catalog's size and SHA-256.
 */
export function downloadCatalogModel(name: string, onProgress?: (p: DownloadProgress) => void, options: Pick<DownloadOptions, 'fetch' | 'segmentBytes'> & { catalog?: ModelCatalog } = {}): CatalogDownload {
  const abort = new AbortController();
  const done = (async () => {
    const entry = (options.catalog ?? new ModelCatalog()).require(name);
    await downloadModel(entry.url, {
      expected: { bytes: entry.bytes, sha256: entry.sha256 },
      signal: abort.signal,
      ...(onProgress ? { onProgress } : {}),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.segmentBytes ? { segmentBytes: options.segmentBytes } : {}),
    });
    return catalogChoice(entry);
  })();
  return { done, cancel: () => abort.abort() };
}

/** Removes a catalog model (or what is stored of its download) from this device. */
export async function forgetCatalogModel(name: string, catalog = new ModelCatalog()): Promise<void> {
  await forgetModel(catalog.require(name).url);
}

/** The choice that runs a catalog model: a URL-addressed GGUF known by its SHA-256, as a relay's model is. */
function catalogChoice(entry: CatalogEntry): ModelChoice {
  return { source: 'relay', id: entry.sha256, name: entry.name, bytes: entry.bytes, contextSize: entry.contextLength, url: entry.url };
}

/** The relay's models, each with its absolute download URL. */
export async function listRelayModels(relay: string): Promise<HostedModel[]> {
  let res: Response;
  try {
    res = await fetch(`${relay}${modelPaths.list}`, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
  } catch (cause) {
    throw new FerryError('relay/unreachable', `The relay at ${relay} could not be reached (${(cause as Error).message}). Check the connection, or the relay URL in Settings.`, { cause });
  }
  if (!res.ok) throw new FerryError('relay/no-models', `The relay answered ${res.status} for its model files; it may be an older version. Update it, or pick a GGUF file from this device.`);
  const list = parseWire(HostedModelListSchema, await res.json(), "The relay's model list", 'relay/bad-response');
  return list.models.map((m) => ({ ...m, url: new URL(m.url, `${relay}/`).href }));
}

/** Downloads (or finds cached) a relay model; the choice to save once it is whole. */
export async function fetchRelayModel(model: HostedModel, onProgress?: (p: DownloadProgress) => void, signal?: AbortSignal): Promise<ModelChoice> {
  // The relay's files are content-addressed: the id is the file's SHA-256.
  await downloadModel(model.url, { expected: { bytes: model.bytes, sha256: model.id }, ...(onProgress ? { onProgress } : {}), ...(signal ? { signal } : {}) });
  return { source: 'relay', id: model.id, name: model.name, bytes: model.bytes, contextSize: model.contextSize, url: model.url };
}

/**
 * Checks a GGUF the user picked and copies it into the model cache, hashing it on the way: the choice to save keeps
 * its SHA-256 (the id engines record, so the transcript and "Where it runs" name it by its file name).
 */
export async function storePickedModel(file: File): Promise<ModelChoice> {
  try {
    const info = await checkGguf(blobReader(file));
    if (info.fileSize !== file.size) throw new FerryError('gguf/truncated', `it is ${file.size} bytes but its header describes ${info.fileSize}`);
  } catch (err) {
    const why = isFerryError(err) ? err.message : String(err);
    throw new FerryError(isFerryError(err) ? err.code : 'gguf/bad-file', `"${file.name}" is not a usable GGUF model: ${why}. Pick a .gguf model file.`, { cause: err });
  }
  const key = await shortHash(`${file.name}\n${file.size}\n${file.lastModified}`);
  const name = `${key}.gguf`;
  const dir = await folder();
  const handle = await dir.getFileHandle(name, { create: true });
  const writable = await handle.createWritable();
  const hasher = await createSHA256();
  const hashing = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, out) {
      hasher.update(chunk);
      out.enqueue(chunk);
    },
  });
  try {
    await file.stream().pipeThrough(hashing).pipeTo(writable);
  } catch (cause) {
    await dir.removeEntry(name).catch(() => undefined);
    throw new FerryError('model/store-failed', `"${file.name}" could not be stored on this device (${(cause as Error).message}). Free some space (Models → Delete) and pick it again.`, { cause });
  }
  return { source: 'file', name: file.name.slice(0, 256), bytes: file.size, file: name, id: hasher.digest('hex') };
}

/** The chosen model's bytes on this device (a cached relay model is checked, and fetched again if evicted). */
export async function openModel(choice: ModelChoice, onProgress?: (p: DownloadProgress) => void): Promise<File> {
  if (choice.source === 'relay') return downloadModel(choice.url, { expected: { bytes: choice.bytes, sha256: choice.id }, ...(onProgress ? { onProgress } : {}) });
  try {
    return await (await (await folder()).getFileHandle(choice.file)).getFile();
  } catch (cause) {
    throw new FerryError('model/missing', `The model "${choice.name}" you picked is no longer stored on this device (the browser may have cleared it). Pick the file again on the Models screen.`, { cause });
  }
}

async function folder(): Promise<FileSystemDirectoryHandle> {
  if (!globalThis.navigator?.storage?.getDirectory) throw new FerryError('model/no-storage', insecurePageReason('origin-private file system to keep a model in') ?? 'This browser has no origin-private file system, so it cannot keep a model. Use a current Chromium, Firefox or Safari.');
  return (await navigator.storage.getDirectory()).getDirectoryHandle(FOLDER, { create: true });
}

async function shortHash(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}
