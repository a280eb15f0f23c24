import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal } from '../../support/refusal.ts';
import { generateAll } from '../../../src/core/llm/index.ts';
import { generateTinyModel } from '../../../src/core/llm/gguf/index.ts';
import { catalogFileName, localModels, parseModelSource, resolveModel, type DownloadProgress } from '../../../server/llm/models.ts';
import { ModelCatalog, type CatalogEntry } from '../../../src/core/llm/catalog.ts';
import { createNodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { modelDir } from './fixtures.ts';

const model = generateTinyModel();
const sha = createHash('sha256').update(model).digest('hex');
const notGguf = new TextEncoder().encode('<html>this is a login page, not a model</html>'.repeat(10));

/** A local "model host": serves files with Range support; `/flaky/…` cuts the first transfer short. */
let server: Server;
let base: string;
const requests: Array<{ url: string; range: string | undefined }> = [];
/** The generated model as if it were a catalog entry served by `base`. */
const asEntry = (file: string, over: Partial<CatalogEntry> = {}): CatalogEntry => ({
  name: 'tiny-test',
  label: 'Tiny test model',
  family: 'llama',
  parameters: '1M',
  quantization: 'F32',
  license: 'Apache-2.0',
  contextLength: 512,
  url: `${base}/${file}`,
  sha256: sha,
  bytes: model.length,
  webLlm: [],
  ...over,
});
let flakyCut = true;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', range: req.headers.range });
    const body = req.url?.endsWith('bad.gguf') ? notGguf : req.url?.endsWith('model.gguf') ? model : undefined;
    if (!body) {
      res.writeHead(404).end('not found');
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range ? Number(range[1]) : 0;
    const slice = body.subarray(from);
    res.writeHead(range ? 206 : 200, { 'content-length': slice.length, ...(range ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}) });
    if (req.url?.startsWith('/flaky/') && flakyCut) {
      flakyCut = false;
      // Half the file, then the connection drops.
      res.write(slice.subarray(0, Math.floor(slice.length / 2)), () => res.destroy());
      return;
    }
    res.end(slice);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

describe('model sources', () => {
  it('maps hf: references to Hugging Face resolve URLs and refuses other schemes', () => {
    expect(parseModelSource('hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf')).toEqual({
      kind: 'hf',
      repo: 'Qwen/Qwen2.5-0.5B-Instruct-GGUF',
      file: 'qwen2.5-0.5b-instruct-q4_k_m.gguf',
      revision: 'main',
      url: 'https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf',
    });
    expect(parseModelSource('hf:org/repo@v1.2/sub dir/m.gguf')).toMatchObject({ revision: 'v1.2', url: 'https://huggingface.co/org/repo/resolve/v1.2/sub%20dir/m.gguf' });
    expect(parseModelSource('https://example.com/a.gguf')).toEqual({ kind: 'url', url: 'https://example.com/a.gguf' });
    expect(parseModelSource('./models/a.gguf')).toEqual({ kind: 'path', path: './models/a.gguf' });
    for (const bad of ['hf:repo-only.gguf', 'hf:o/r/../x.gguf', 'hf:o/r/not-a-model.bin', 's3://bucket/m.gguf']) {
      expect(() => parseModelSource(bad)).toThrow(expect.objectContaining({ code: 'model/bad-source' }) as Error);
    }
  });

  it('uses a local file after checking it; a missing or bad one is a typed error', async () => {
    const dir = await modelDir();
    try {
      const file = await dir.model('local.gguf');
      const resolved = await resolveModel(file, { dataDir: dir.dir });
      expect(resolved).toMatchObject({ path: file, sha256: sha, source: { kind: 'path' } });
      expect(resolved.info.architecture).toBe('llama');
      expect((await refusal(() => resolveModel(path.join(dir.dir, 'nope.gguf'), { dataDir: dir.dir }))).code).toBe('model/not-found');
    } finally {
      await dir.cleanup();
    }
  });

  it('downloads a URL once with progress, and the engine runs it', async () => {
    const dir = await modelDir();
    try {
      const progress: DownloadProgress[] = [];
      const url = `${base}/files/model.gguf`;
      const resolved = await resolveModel(url, { dataDir: dir.dir, onProgress: (p) => progress.push(p) });
      expect(resolved.sha256).toBe(sha);
      expect(new Uint8Array(await readFile(resolved.path))).toEqual(model);
      expect(progress.at(-1)).toEqual({ received: model.length, total: model.length, resumedFrom: 0 });
      expect(progress.map((p) => p.received)).toEqual([...progress.map((p) => p.received)].sort((a, b) => a - b));
      const before = requests.length;
      expect((await resolveModel(url, { dataDir: dir.dir })).path).toBe(resolved.path);
      expect(requests.length).toBe(before); // cached: no second download
      const engine = await createNodeLlamaEngine({ modelPath: resolved.path, modelSha256: resolved.sha256, gpu: false, threads: 1, slots: 1 });
      try {
        expect(engine.info.model).toBe(sha);
        expect((await generateAll(engine, { prompt: { text: 'hello' }, maxTokens: 8 })).tokens).toHaveLength(8);
      } finally {
        await engine.dispose();
      }
    } finally {
      await dir.cleanup();
    }
  });

  it('resumes an interrupted download where it stopped', async () => {
    const dir = await modelDir();
    try {
      const url = `${base}/flaky/model.gguf`;
      const first = await refusal(() => resolveModel(url, { dataDir: dir.dir }));
      expect(first.code).toBe('model/download-failed');
      const parts = (await readdir(path.join(dir.dir, 'models'))).filter((f) => f.endsWith('.part'));
      expect(parts).toHaveLength(1);
      const kept = (await stat(path.join(dir.dir, 'models', parts[0]!))).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(model.length);
      const progress: DownloadProgress[] = [];
      const resolved = await resolveModel(url, { dataDir: dir.dir, onProgress: (p) => progress.push(p) });
      expect(requests.at(-1)?.range).toBe(`bytes=${kept}-`);
      expect(progress[0]).toEqual({ received: kept, total: model.length, resumedFrom: kept });
      expect(resolved.sha256).toBe(sha);
    } finally {
      await dir.cleanup();
    }
  });

  it('refuses a download that is not a model, or not there, and keeps nothing of it', async () => {
    const dir = await modelDir();
    try {
      expect((await refusal(() => resolveModel(`${base}/files/bad.gguf`, { dataDir: dir.dir }))).code).toBe('gguf/bad-magic');
      expect(await readdir(path.join(dir.dir, 'models'))).toEqual([]);
      const missing = await refusal(() => resolveModel(`${base}/files/missing.gguf`, { dataDir: dir.dir }));
      expect(missing.code).toBe('model/download-failed');
      expect(missing.message).toContain('404');
    } finally {
      await dir.cleanup();
    }
  });
});

describe('catalog models', () => {
  it('names resolve in the catalog (built-in or a deployment\'s), `demo` is the generated model, an unknown name says what there is', () => {
    expect(parseModelSource('qwen2.5-0.5b')).toMatchObject({ kind: 'catalog', entry: { name: 'qwen2.5-0.5b', bytes: 491_400_032 } });
    expect(parseModelSource('demo')).toEqual({ kind: 'demo' });
    const own = new ModelCatalog([asEntry('files/model.gguf')]);
    expect(parseModelSource('tiny-test', own)).toMatchObject({ kind: 'catalog', url: `${base}/files/model.gguf` });
    expect(() => parseModelSource('qwen2.5-7b')).toThrow(expect.objectContaining({ code: 'model/unknown-model', message: expect.stringContaining('qwen2.5-0.5b') }) as Error);
    // A file name is still a path.
    expect(parseModelSource('tiny.gguf')).toEqual({ kind: 'path', path: 'tiny.gguf' });
  });

  it('downloads a catalog model once, under its name, checked by size and SHA-256; a dropped download resumes with Range', async () => {
    const dir = await modelDir();
    try {
      const catalog = new ModelCatalog([asEntry('flaky/model.gguf')]);
      flakyCut = true;
      const first = await refusal(() => resolveModel('tiny-test', { dataDir: dir.dir, catalog }));
      expect(first.code).toBe('model/download-failed');
      expect((await localModels(dir.dir, catalog)).catalog[0]).toMatchObject({ state: 'partial', bytes: expect.any(Number) as number });
      const kept = (await localModels(dir.dir, catalog)).catalog[0]!.bytes;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(model.length);

      const resolved = await resolveModel('tiny-test', { dataDir: dir.dir, catalog });
      expect(requests.at(-1)?.range).toBe(`bytes=${kept}-`);
      expect(resolved).toMatchObject({ name: 'tiny-test', label: 'Tiny test model, F32', sha256: sha, path: path.join(dir.dir, 'models', catalogFileName(catalog.entries[0]!)) });
      expect(new Uint8Array(await readFile(resolved.path))).toEqual(model);
      expect((await localModels(dir.dir, catalog)).catalog[0]).toEqual({ entry: catalog.entries[0], state: 'downloaded', bytes: model.length });
      const before = requests.length;
      await resolveModel('tiny-test', { dataDir: dir.dir, catalog });
      expect(requests.length).toBe(before);
    } finally {
      await dir.cleanup();
    }
  });

  it('refuses a file whose SHA-256 is not the catalog\'s, and removes it', async () => {
    const dir = await modelDir();
    try {
      const catalog = new ModelCatalog([asEntry('files/model.gguf', { sha256: 'f'.repeat(64) })]);
      const err = await refusal(() => resolveModel('tiny-test', { dataDir: dir.dir, catalog }));
      expect(err.code).toBe('model/checksum-mismatch');
      expect(err.message).toContain(sha);
      expect(await readdir(path.join(dir.dir, 'models'))).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });

  it('refuses a file of another size before keeping any of it', async () => {
    const dir = await modelDir();
    try {
      const catalog = new ModelCatalog([asEntry('files/model.gguf', { bytes: model.length - 1 })]);
      const err = await refusal(() => resolveModel('tiny-test', { dataDir: dir.dir, catalog }));
      expect(err.code).toBe('model/size-mismatch');
      expect(await readdir(path.join(dir.dir, 'models'))).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });

  it('refuses a model the disk has no room for before fetching a byte', async () => {
    const dir = await modelDir();
    try {
      const catalog = new ModelCatalog([asEntry('files/model.gguf', { bytes: 2 ** 45 })]);
      const before = requests.length;
      const err = await refusal(() => resolveModel('tiny-test', { dataDir: dir.dir, catalog }));
      expect(err.code).toBe('model/storage-full');
      expect(err.message).toMatch(/needs 35184372 MB more in .* which has [\d.]+ MB free/);
      expect(requests.length).toBe(before);
      expect(await readdir(path.join(dir.dir, 'models'))).toEqual([]);
    } finally {
      await dir.cleanup();
    }
  });
});
