/**
 * Model downloads for wllama in Chromium, cached in the origin-private file system: progress, the cache, a
 * broken-off download resumed with a Range request (or restarted when the server ignores Range), an evicted or
 * damaged cache entry fetched again, and a file that is not a model refused and never cached. The "server" is a
 * fetch over a generated GGUF that honours Range and can break off mid-body, so every path is deterministic.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/core/errors.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { downloadModel, forgetModel, type DownloadProgress } from '../../src/browser/llm/model-download.ts';

const FOLDER = 'ferry-models-test';
const URL_A = 'https://models.example/tiny.gguf';
const model = generateTinyModel({ seed: 5 });

interface FakeServer {
  fetch: typeof fetch;
  /** The Range header of every request, or null. */
  ranges: (string | null)[];
}

/** Serves `bytes` in 64 KiB chunks; `breakAfter` ends the body with an error after that many bytes of a response. */
function server(bytes: Uint8Array, options: { breakAfter?: number; ignoreRange?: boolean } = {}): FakeServer {
  const ranges: (string | null)[] = [];
  const fetchFn = async (_input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const range = new Headers(init?.headers).get('range');
    ranges.push(range);
    const from = range && !options.ignoreRange ? Number(/^bytes=(\d+)-$/.exec(range)![1]) : 0;
    const body = bytes.subarray(from);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (options.breakAfter !== undefined && sent >= options.breakAfter) {
          controller.error(new TypeError('network connection lost'));
          return;
        }
        const end = Math.min(body.length, sent + 65_536, options.breakAfter ?? Infinity);
        controller.enqueue(body.slice(sent, end));
        sent = end;
        if (sent === body.length) controller.close();
      },
    });
    return new Response(stream, {
      status: from > 0 ? 206 : 200,
      headers: { 'content-length': String(body.length), ...(from > 0 ? { 'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}` } : {}) },
    });
  };
  return { fetch: fetchFn as typeof fetch, ranges };
}

async function bytesOf(file: Blob): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

afterEach(() => forgetModel(URL_A, FOLDER));

describe('model downloads in Chromium (OPFS cache)', () => {
  it('downloads with progress, then serves the cached file without fetching', async () => {
    const first = server(model);
    const progress: DownloadProgress[] = [];
    const file = await downloadModel(URL_A, { fetch: first.fetch, folder: FOLDER, onProgress: (p) => progress.push(p) });
    expect(await bytesOf(file)).toEqual(model);
    expect(progress[0]).toMatchObject({ phase: 'downloading', loaded: 0, total: model.length });
    const loaded = progress.filter((p) => p.phase === 'downloading').map((p) => p.loaded);
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b));
    expect(loaded.at(-1)).toBe(model.length);
    expect(progress.at(-1)).toMatchObject({ phase: 'done', loaded: model.length });

    const again = server(model);
    const cachedProgress: DownloadProgress[] = [];
    const cached = await downloadModel(URL_A, { fetch: again.fetch, folder: FOLDER, onProgress: (p) => cachedProgress.push(p) });
    expect(again.ranges).toEqual([]);
    expect(cachedProgress).toEqual([{ url: URL_A, loaded: model.length, total: model.length, phase: 'cached' }]);
    expect(await bytesOf(cached)).toEqual(model);
  });

  it('keeps the bytes of a broken-off download and resumes from them with a Range request', async () => {
    const cut = 200_000;
    const err = await downloadModel(URL_A, { fetch: server(model, { breakAfter: cut }).fetch, folder: FOLDER }).catch((e: unknown) => e);
    expect(isFerryError(err, 'model/download-interrupted')).toBe(true);
    expect((err as Error).message).toMatch(/resumes/);

    const resume = server(model);
    const phases: string[] = [];
    const file = await downloadModel(URL_A, { fetch: resume.fetch, folder: FOLDER, onProgress: (p) => phases.push(p.phase) });
    expect(resume.ranges).toEqual([`bytes=${cut}-`]);
    expect(phases[0]).toBe('resuming');
    expect(await bytesOf(file)).toEqual(model);
  });

  it('starts over, and says so, when the server ignores the Range request', async () => {
    await downloadModel(URL_A, { fetch: server(model, { breakAfter: 100_000 }).fetch, folder: FOLDER }).catch(() => undefined);
    const phases: string[] = [];
    const file = await downloadModel(URL_A, { fetch: server(model, { ignoreRange: true }).fetch, folder: FOLDER, onProgress: (p) => phases.push(p.phase) });
    expect(phases[0]).toBe('restarted');
    expect(await bytesOf(file)).toEqual(model);
  });

  it('fetches again when the cached file was evicted or damaged', async () => {
    await downloadModel(URL_A, { fetch: server(model).fetch, folder: FOLDER });
    // Damage the cached file in place: cut it short, as an eviction or a crash mid-write would.
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(FOLDER);
    for await (const [name, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
      if (name.endsWith('.gguf')) {
        const writable = await (handle as FileSystemFileHandle).createWritable({ keepExistingData: true });
        await writable.truncate(1000);
        await writable.close();
      }
    }
    const refetch = server(model);
    const file = await downloadModel(URL_A, { fetch: refetch.fetch, folder: FOLDER });
    expect(refetch.ranges).toEqual([null]);
    expect(await bytesOf(file)).toEqual(model);
  });

  it('refuses a file that is not a model with a typed error, and caches nothing of it', async () => {
    const page = new TextEncoder().encode('<!doctype html><title>Not found</title>'.repeat(100));
    const err = await downloadModel(URL_A, { fetch: server(page).fetch, folder: FOLDER }).catch((e: unknown) => e);
    expect(isFerryError(err, 'gguf/')).toBe(true);
    expect((err as Error).message).toContain('not a usable model');
    // Nothing was kept: the next attempt downloads from the start.
    const next = server(model);
    await downloadModel(URL_A, { fetch: next.fetch, folder: FOLDER });
    expect(next.ranges).toEqual([null]);
  });

  it('reports an HTTP error and an unreachable server as typed errors', async () => {
    const notFound = (async () => new Response('no', { status: 404, statusText: 'Not Found' })) as typeof fetch;
    const err404 = await downloadModel(URL_A, { fetch: notFound, folder: FOLDER }).catch((e: unknown) => e);
    expect(isFerryError(err404, 'model/download-failed')).toBe(true);
    expect((err404 as Error).message).toContain('HTTP 404');
    const offline = (async () => {
      throw new TypeError('Failed to fetch');
    }) as typeof fetch;
    const errOffline = await downloadModel(URL_A, { fetch: offline, folder: FOLDER }).catch((e: unknown) => e);
    expect(isFerryError(errOffline, 'model/unreachable')).toBe(true);
  });
});
