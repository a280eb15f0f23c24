/**
 * Model downloads in Chromium, cached in the origin-private file system, from a local HTTP server that serves a
 * generated model as if it were a catalog entry (test/support/model-server-commands.ts): progress and the cache, a
 * dropped download resumed with a Range request (or restarted when the server ignores Range), a download cut off by a
 * "reload" (its worker terminated mid-write) resumed from what was committed, a wrong checksum or size refused and
 * removed, too little quota refused before a byte is fetched, an evicted cache entry fetched again, a file that is
 * not a model refused, and the catalog API the Models screen calls (list, download with progress, cancel).
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import { isFerryError } from '../../src/core/errors.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { ModelCatalog, type CatalogEntry } from '../../src/core/llm/catalog.ts';
import { downloadModel, downloadState, forgetModel, type DownloadProgress, type ExpectedFile } from '../../src/browser/llm/model-download.ts';
import { downloadCatalogModel, forgetCatalogModel, listCatalogModels } from '../../src/browser/llm/model-source.ts';
import { listCachedModels } from '../../src/browser/llm/model-cache.ts';
import type { DownloadWorkerMessage } from './model-download.worker.ts';

const FOLDER = 'ferry-models-test';
const SEGMENT = 65_536;
const params = { seed: 5 };
const model = generateTinyModel(params);
let url: string;
let expected: ExpectedFile;

beforeAll(async () => {
  url = await commands.modelServer({ params });
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', model));
  expected = { bytes: model.length, sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('') };
});

afterEach(() => forgetModel(url, FOLDER));

/** -1 when `file` holds exactly the model, else the first byte that differs (a deep toEqual of 800 KB is slow). */
async function differsAt(file: Blob): Promise<number> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.length !== model.length) return Math.min(bytes.length, model.length);
  return bytes.findIndex((b, i) => b !== model[i]);
}
const failure = (work: Promise<unknown>): Promise<unknown> => work.then(() => new Error('expected a failure'), (err: unknown) => err);
const options = { folder: FOLDER, segmentBytes: SEGMENT };

/**
 * A download whose connection breaks once `cut` bytes have been read: the server holds the connection after them
 * and drops it only then. (Dropping it at once would race the browser, which discards bytes it had received but
 * not yet handed to the reader when the connection breaks.)
 */
async function droppedAfter(cut: number): Promise<unknown> {
  await commands.modelServer({ params, stallAfter: cut });
  const { promise: arrived, resolve } = Promise.withResolvers<void>();
  const work = failure(downloadModel(url, { ...options, expected, onProgress: (p) => p.loaded >= cut && resolve() }));
  await arrived;
  await commands.modelServer({ params }); // drops the held connection, and serves normally from now on
  return work;
}

describe('model downloads in Chromium (OPFS cache, a local model server)', () => {
  it('downloads with progress, committing segment by segment, then serves the cached file without fetching', async () => {
    await commands.modelServer({ params });
    const progress: DownloadProgress[] = [];
    const file = await downloadModel(url, { ...options, expected, onProgress: (p) => progress.push(p) });
    expect(await differsAt(file)).toBe(-1);
    expect(progress[0]).toMatchObject({ phase: 'downloading', loaded: 0, stored: 0, total: model.length });
    const downloading = progress.filter((p) => p.phase === 'downloading');
    expect(downloading.map((p) => p.loaded)).toEqual([...downloading.map((p) => p.loaded)].sort((a, b) => a - b));
    // What is stored trails what arrived by less than a segment, and only ever in whole segments until the end.
    for (const p of downloading) {
      expect(p.loaded - p.stored).toBeLessThan(SEGMENT);
      if (p.loaded < model.length) expect(p.stored % SEGMENT).toBe(0);
    }
    expect(progress.at(-1)).toMatchObject({ phase: 'done', loaded: model.length, stored: model.length });
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'downloaded', stored: model.length });

    await commands.modelServer({ params });
    const cachedProgress: DownloadProgress[] = [];
    const cached = await downloadModel(url, { ...options, expected, onProgress: (p) => cachedProgress.push(p) });
    expect(await commands.modelServerRanges()).toEqual([]);
    expect(cachedProgress).toEqual([{ url, loaded: model.length, total: model.length, stored: model.length, phase: 'cached' }]);
    expect(await differsAt(cached)).toBe(-1);
  });

  it('keeps the bytes of a dropped download and resumes from them with a Range request, checking the whole file', async () => {
    const cut = 200_000;
    const err = await droppedAfter(cut);
    expect(isFerryError(err, 'model/download-interrupted')).toBe(true);
    expect((err as Error).message).toMatch(/resumes/);
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'partial', stored: cut });

    await commands.modelServer({ params });
    const phases: string[] = [];
    const file = await downloadModel(url, { ...options, expected, onProgress: (p) => phases.push(p.phase) });
    expect(await commands.modelServerRanges()).toEqual([`bytes=${cut}-`]);
    expect(phases[0]).toBe('resuming');
    expect(phases.at(-1)).toBe('done');
    expect(await differsAt(file)).toBe(-1);
  });

  it('resumes after a reload mid-download from what was committed to storage', async () => {
    await commands.modelServer({ params, stallAfter: 300_000 });
    const worker = new Worker(new URL('./model-download.worker.ts', import.meta.url), { type: 'module' });
    // The worker stands in for the page: once four segments are committed it is terminated, as a reload ends a
    // page, while the fifth is half-written and the server holds the connection open.
    await new Promise<void>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<DownloadWorkerMessage>) => {
        const m = event.data;
        if (m.type === 'progress' && m.progress.stored >= 4 * SEGMENT) resolve();
        if (m.type === 'error' || m.type === 'done') reject(new Error(`the download ended before the reload: ${JSON.stringify(m)}`));
      };
      worker.postMessage({ url, options: { ...options, expected } });
    });
    worker.terminate();
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'partial', stored: 4 * SEGMENT });

    await commands.modelServer({ params });
    const phases: string[] = [];
    const file = await downloadModel(url, { ...options, expected, onProgress: (p) => phases.push(p.phase) });
    expect(await commands.modelServerRanges()).toEqual([`bytes=${4 * SEGMENT}-`]);
    expect(phases[0]).toBe('resuming');
    expect(await differsAt(file)).toBe(-1);
  });

  it('starts over, and says so, when the server ignores the Range request', async () => {
    await droppedAfter(100_000);
    await commands.modelServer({ params, ignoreRange: true });
    const phases: string[] = [];
    const file = await downloadModel(url, { ...options, expected, onProgress: (p) => phases.push(p.phase) });
    expect(phases[0]).toBe('restarted');
    expect(await differsAt(file)).toBe(-1);
  });

  it('refuses a file whose SHA-256 is not the expected one, and removes it', async () => {
    await commands.modelServer({ params });
    const err = await failure(downloadModel(url, { ...options, expected: { ...expected, sha256: 'f'.repeat(64) } }));
    expect(isFerryError(err, 'model/checksum-mismatch')).toBe(true);
    expect((err as Error).message).toContain(expected.sha256);
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'absent', stored: 0 });
    // Nothing was kept: the next attempt downloads from the start.
    await commands.modelServer({ params });
    await downloadModel(url, { ...options, expected });
    expect(await commands.modelServerRanges()).toEqual([null]);
  });

  it('refuses a response of another size before storing any of it', async () => {
    await commands.modelServer({ params });
    const err = await failure(downloadModel(url, { ...options, expected: { ...expected, bytes: model.length + 1 } }));
    expect(isFerryError(err, 'model/size-mismatch')).toBe(true);
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'absent', stored: 0 });
  });

  it('refuses, before a byte is fetched, a model the browser has no room for', async () => {
    await commands.modelServer({ params });
    const estimate = await navigator.storage.estimate();
    const tooBig = { ...expected, bytes: estimate.quota! - estimate.usage! + 1 };
    const err = await failure(downloadModel(url, { ...options, expected: tooBig }));
    expect(isFerryError(err, 'model/storage-full')).toBe(true);
    expect((err as Error).message).toMatch(/needs .* MB more of this browser's storage, and only .* MB is free for this site\..*Nothing was downloaded/);
    expect(await commands.modelServerRanges()).toEqual([]);
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'absent', stored: 0 });
  });

  it('fetches again when a cached segment was evicted', async () => {
    await commands.modelServer({ params });
    await downloadModel(url, { ...options, expected });
    const root = await (await navigator.storage.getDirectory()).getDirectoryHandle(FOLDER);
    const [entry] = (await listCachedModels(FOLDER)).filter((m) => m.complete);
    const dir = await root.getDirectoryHandle(entry!.name);
    await dir.removeEntry(`${String(SEGMENT * 2).padStart(15, '0')}.part`);
    await commands.modelServer({ params });
    const file = await downloadModel(url, { ...options, expected });
    expect(await commands.modelServerRanges()).toEqual([null]);
    expect(await differsAt(file)).toBe(-1);
  });

  it('refuses a file that is not a model with a typed error, and caches nothing of it', async () => {
    await commands.modelServer({ text: '<!doctype html><title>Sign in</title>'.repeat(100) });
    const err = await failure(downloadModel(url, options));
    expect(isFerryError(err, 'gguf/')).toBe(true);
    expect((err as Error).message).toContain('not a usable model');
    expect(await downloadState(url, FOLDER)).toEqual({ state: 'absent', stored: 0 });
  });

  it('reports an HTTP error and an unreachable server as typed errors', async () => {
    await commands.modelServer({ status: 404 });
    const err404 = await failure(downloadModel(url, options));
    expect(isFerryError(err404, 'model/download-failed')).toBe(true);
    expect((err404 as Error).message).toContain('HTTP 404');
    const errOffline = await failure(downloadModel('http://127.0.0.1:9/models/tiny.gguf', options));
    expect(isFerryError(errOffline, 'model/unreachable')).toBe(true);
  });
});

describe('the catalog API of the Models screen', () => {
  let catalog: ModelCatalog;
  beforeAll(() => {
    const entry: CatalogEntry = { name: 'tiny-test', label: 'Tiny test model', family: 'llama', parameters: '1M', quantization: 'F32', license: 'Apache-2.0', contextLength: 512, url, sha256: expected.sha256, bytes: expected.bytes, webLlm: [] };
    catalog = new ModelCatalog([entry]);
  });
  afterEach(() => forgetCatalogModel('tiny-test', catalog));

  it('lists the catalog with what is here; a download reports progress, can be cancelled, resumes, and yields the choice to save', async () => {
    expect(await listCatalogModels(catalog)).toEqual([{ entry: catalog.entries[0], state: 'absent', stored: 0 }]);

    await commands.modelServer({ params, stallAfter: 150_000 });
    let cancelled!: () => void;
    const stalled = new Promise<void>((resolve) => (cancelled = resolve));
    const first = downloadCatalogModel('tiny-test', (p) => p.loaded >= 150_000 && cancelled(), { catalog, segmentBytes: SEGMENT });
    await stalled;
    first.cancel();
    const err = await failure(first.done);
    expect(isFerryError(err, 'model/download-cancelled')).toBe(true);
    expect(await listCatalogModels(catalog)).toEqual([{ entry: catalog.entries[0], state: 'partial', stored: 150_000 }]);

    await commands.modelServer({ params });
    const progress: DownloadProgress[] = [];
    const second = downloadCatalogModel('tiny-test', (p) => progress.push(p), { catalog, segmentBytes: SEGMENT });
    expect(await second.done).toEqual({ source: 'relay', id: expected.sha256, name: 'tiny-test', bytes: model.length, contextSize: 512, url });
    expect(await commands.modelServerRanges()).toEqual(['bytes=150000-']);
    expect(progress[0]?.phase).toBe('resuming');
    expect(await listCatalogModels(catalog)).toEqual([{ entry: catalog.entries[0], state: 'downloaded', stored: model.length }]);

    const unknown = await failure(downloadCatalogModel('qwen2.5-7b').done);
    expect(isFerryError(unknown, 'model/unknown-model')).toBe(true);
  });
});
