/**
 * The relay serves its GGUF files to browsers (issue 5): a list, and each file by content hash with HTTP Range,
 * so a device without internet gets its model from the relay and resumes a broken download. Names that are not
 * a hosted hash never reach the filesystem.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
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
    expect(models).toEqual([expect.objectContaining({ id: sha256, bytes: model.length, url: modelPaths.file(`${sha256}.gguf`) })]);
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
