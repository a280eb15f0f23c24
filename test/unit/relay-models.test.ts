/**
 * The relay serves its GGUF files to browsers: a list, and each file by content hash with HTTP Range, so a device
 * without internet gets its model from the relay and resumes a broken download. Names that are not a hosted hash
 * never reach the filesystem. Models show by name: a file by its own name, a catalog model (here the generated
 * model served by a local HTTP server as if it were a catalog entry, through a deployment's --catalog file) by its
 * catalog name, in the relay's list and in /v1/models, where clients may ask for it by name or by hash.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import OpenAI from 'openai';
import * as v from 'valibot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { HostedModelListSchema, modelPaths } from '../../src/core/protocol/index.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
const model = generateTinyModel({ seed: 21 });
const sha256 = createHash('sha256').update(model).digest('hex');

beforeAll(async () => {
  dirs = await makeTempDirs();
  const file = path.join(dirs.root, 'tiny.gguf');
  await writeFile(file, model);
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: file, embeddedWorker: false });
}, 120_000);

afterAll(async () => {
  await relay?.close();
  await dirs?.cleanup();
});

describe('model files for browsers', () => {
  it('lists the hosted model by content hash, with its size, tokenizer and where to get it', async () => {
    const res = await fetch(relay.url + modelPaths.list);
    expect(res.status).toBe(200);
    const { models } = v.parse(HostedModelListSchema, await res.json());
    expect(models).toEqual([expect.objectContaining({ id: sha256, name: 'tiny.gguf', label: 'tiny.gguf', bytes: model.length, url: modelPaths.file(`${sha256}.gguf`) })]);
    expect(models[0]!.tokenizerId).toMatch(/\S/);
    expect(models[0]!.contextSize).toBeGreaterThan(0);
  });

  it('serves the exact bytes, immutable and rangeable', async () => {
    const res = await fetch(relay.url + modelPaths.file(`${sha256}.gguf`));
    expect(res.status).toBe(200);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(Number(res.headers.get('content-length'))).toBe(model.length);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(model);
  });

  it('resumes with Range: open-ended, bounded and suffix ranges; an unsatisfiable one is 416', async () => {
    const url = relay.url + modelPaths.file(`${sha256}.gguf`);
    const from = 100_000;
    const open = await fetch(url, { headers: { range: `bytes=${from}-` } });
    expect(open.status).toBe(206);
    expect(open.headers.get('content-range')).toBe(`bytes ${from}-${model.length - 1}/${model.length}`);
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(model.subarray(from));

    const bounded = await fetch(url, { headers: { range: 'bytes=10-19' } });
    expect(bounded.status).toBe(206);
    expect(new Uint8Array(await bounded.arrayBuffer())).toEqual(model.subarray(10, 20));

    const suffix = await fetch(url, { headers: { range: 'bytes=-16' } });
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(model.subarray(model.length - 16));

    const beyond = await fetch(url, { headers: { range: `bytes=${model.length}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${model.length}`);
  });

  it('answers unknown and malformed names with JSON errors, never a file path', async () => {
    const unknown = await fetch(relay.url + modelPaths.file(`${'0'.repeat(64)}.gguf`));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'relay/unknown-model' } });
    for (const name of ['..%2F..%2Fetc%2Fpasswd', 'tiny.gguf', `${sha256.toUpperCase()}.gguf`, sha256]) {
      const res = await fetch(relay.url + modelPaths.file(name));
      expect(res.status, name).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'protocol/bad-request' } });
    }
  });
});

describe('a catalog model on the relay', () => {
  let server: Server;
  let catalogRelay: TestRelay;
  let catalogDirs: Awaited<ReturnType<typeof makeTempDirs>>;

  beforeAll(async () => {
    server = createServer((_req, res) => void res.writeHead(200, { 'content-length': model.length }).end(model));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    catalogDirs = await makeTempDirs();
    const catalogFile = path.join(catalogDirs.root, 'catalog.json');
    const entry = { name: 'tiny-test', label: 'Tiny test model', family: 'llama', parameters: '1M', quantization: 'F32', license: 'Apache-2.0', contextLength: 512, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny.gguf`, sha256, bytes: model.length, webLlm: [] };
    await writeFile(catalogFile, JSON.stringify([entry]));
    catalogRelay = await startTestRelay({ staticDir: catalogDirs.staticDir, dataDir: catalogDirs.dataDir, model: 'tiny-test', catalogFile, embeddedWorker: false });
  }, 120_000);

  afterAll(async () => {
    await catalogRelay?.close();
    await catalogDirs?.cleanup();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('lists it by its catalog name and label, still addressed by content hash', async () => {
    const { models } = v.parse(HostedModelListSchema, await (await fetch(catalogRelay.url + modelPaths.list)).json());
    expect(models).toEqual([expect.objectContaining({ id: sha256, name: 'tiny-test', label: 'Tiny test model, F32', url: modelPaths.file(`${sha256}.gguf`) })]);
  });

  it('/v1/models names it, and a client may ask for it by name or by hash', async () => {
    const client = new OpenAI({ baseURL: `${catalogRelay.url}/v1`, apiKey: 'none' });
    const list = await client.models.list();
    expect(list.data).toEqual([expect.objectContaining({ id: 'tiny-test', ferry: expect.objectContaining({ model: sha256 }) as unknown })]);
    for (const asked of ['tiny-test', sha256]) {
      const completion = await client.completions.create({ model: asked, prompt: 'hello', max_tokens: 4, temperature: 0 });
      expect(completion.choices[0]!.text.length, asked).toBeGreaterThan(0);
    }
    await expect(client.completions.create({ model: 'qwen2.5-0.5b', prompt: 'hello', max_tokens: 4 })).rejects.toMatchObject({ status: 404 });
  });
});
