import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FerryError } from '../../src/core/errors.ts';
import { refusal as refuse } from '../support/refusal.ts';
import { blobReader, bytesReader, checkGguf } from '../../src/core/llm/gguf/index.ts';
import { GGML_TYPES } from '../../src/core/llm/gguf/format.ts';
import { readGgufHeader } from '../../src/core/llm/gguf/header.ts';
import { CHATML_TEMPLATE, generateTinyModel, tinyModelSpec, tinyVocabulary } from '../../src/core/llm/gguf/tiny-model.ts';
import { writeGguf, type GgufValue } from '../../src/core/llm/gguf/writer.ts';
import { openFileReader } from '../../server/llm/file-reader.ts';
import { checkModelFile, loadNativeModel } from '../../server/llm/load-native.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-gguf-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const good = generateTinyModel();

/** The FerryError that checking `bytes` throws (fails the test when it does not throw one). */
const refusal = (bytes: Uint8Array): Promise<FerryError> => refuse(() => checkGguf(bytesReader(bytes)), 'the checker accepted a bad file');

/** A tiny model whose metadata went through `edit`. */
function withMetadata(edit: (entries: Array<readonly [string, GgufValue]>) => Array<readonly [string, GgufValue]>): Uint8Array {
  const spec = tinyModelSpec();
  return writeGguf({ ...spec, metadata: edit([...spec.metadata]) });
}

const replace = (key: string, value: GgufValue) => (entries: Array<readonly [string, GgufValue]>) =>
  entries.map(([k, v]) => [k, k === key ? value : v] as const);

/** Position just after the length-prefixed string `s` in the file (a metadata key or a tensor name). */
function after(bytes: Uint8Array, s: string): number {
  const text = new TextEncoder().encode(s);
  const needle = new Uint8Array(8 + text.length);
  new DataView(needle.buffer).setBigUint64(0, BigInt(text.length), true);
  needle.set(text, 8);
  const at = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).indexOf(needle);
  if (at < 0) throw new Error(`${s} not found`);
  return at + needle.length;
}

function patched(bytes: Uint8Array, edit: (view: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer));
  return copy;
}

/** Where a tensor info's offset field lies: after its name, n_dims, the dims and the type. */
function tensorOffsetField(bytes: Uint8Array, name: string): number {
  const at = after(bytes, name);
  const nDims = new DataView(bytes.buffer, bytes.byteOffset).getUint32(at, true);
  return at + 4 + 8 * nDims + 4;
}

describe('checkGguf accepts a good model', () => {
  it('reports its sizes, tokenizer and template', async () => {
    const info = await checkGguf(bytesReader(good));
    expect(info).toMatchObject({
      version: 3,
      architecture: 'llama',
      contextLength: 512,
      embeddingLength: 64,
      blockCount: 2,
      feedForwardLength: 256,
      headCount: 4,
      headCountKv: 2,
      vocabSize: tinyVocabulary().tokens.length,
      tokenizerModel: 'llama',
      bosTokenId: 1,
      eosTokenId: 2,
      chatTemplate: CHATML_TEMPLATE,
      fileSize: good.length,
      tensorCount: 3 + 2 * 9,
    });
    expect(info.tokenizerHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads the same through a Blob and a file handle, and for other sizes', async () => {
    const f16 = generateTinyModel({ embd: 96, layers: 3, heads: 6, kvHeads: 3, ff: 160, ctx: 256, type: 'f16', seed: 4 });
    const path = join(dir, 'f16.gguf');
    await writeFile(path, f16);
    const fromBytes = await checkGguf(bytesReader(f16));
    expect(await checkGguf(blobReader(new Blob([f16])))).toEqual(fromBytes);
    const file = await openFileReader(path);
    try {
      expect(await checkGguf(file)).toEqual(fromBytes);
    } finally {
      await file.close();
    }
    expect(await checkModelFile(path)).toEqual(fromBytes);
    expect(fromBytes).toMatchObject({ embeddingLength: 96, blockCount: 3, headCount: 6, headCountKv: 3, feedForwardLength: 160, contextLength: 256, tensorCount: 30 });
  });

  it('gives one tokenizer hash to models with the same vocabulary, another to a different one', async () => {
    const hash = async (bytes: Uint8Array) => (await checkGguf(bytesReader(bytes))).tokenizerHash;
    const base = await hash(good);
    expect(await hash(generateTinyModel({ type: 'f16', seed: 9, embd: 32, heads: 2, kvHeads: 1 }))).toBe(base);
    const tokens = [...tinyVocabulary().tokens];
    tokens[300] = 'Z';
    tokens[tokens.indexOf('Z')] = '?';
    expect(await hash(withMetadata(replace('tokenizer.ggml.tokens', { type: 'string[]', value: tokens })))).not.toBe(base);
    const types = [...tinyVocabulary().types];
    types[3] = 1;
    expect(await hash(withMetadata(replace('tokenizer.ggml.token_type', { type: 'int32[]', value: types })))).not.toBe(base);
  });
});

describe('checkGguf refuses bad files with typed errors', () => {
  it('truncated files, cut anywhere', async () => {
    const header = await readGgufHeader(bytesReader(good));
    const last = header.tensors.at(-1);
    const dataEnd = header.dataOffset + (last?.offset ?? 0) + (last?.byteSize ?? 0);
    const afterKey = after(good, 'tokenizer.ggml.tokens');
    const cuts = [0, 3, 7, 12, 30, afterKey, afterKey + 500, header.dataOffset - 40, header.dataOffset, header.dataOffset + 1000, dataEnd - 1];
    for (const cut of cuts) {
      const err = await refusal(good.subarray(0, cut));
      expect(err.code, `cut at ${cut}`).toBe('gguf/truncated');
      expect(err.message).toMatch(/truncated.*Download it again/);
    }
    await expect(checkGguf(bytesReader(good.subarray(0, dataEnd)))).resolves.toBeDefined();
  });

  it('a wrong magic number', async () => {
    for (const magic of ['GGML', 'ggjt', 'PK\x03\x04', '\0\0\0\0']) {
      const bytes = patched(good, (v) => [...magic].forEach((ch, i) => v.setUint8(i, ch.charCodeAt(0))));
      const err = await refusal(bytes);
      expect(err.code).toBe('gguf/bad-magic');
      expect(err.message).toMatch(/not a GGUF model file/);
    }
  });

  it('an unsupported version', async () => {
    for (const version of [0, 1, 4, 0x03000000]) {
      const err = await refusal(patched(good, (v) => v.setUint32(4, version, true)));
      expect(err.code).toBe('gguf/unsupported-version');
      expect(err.details).toEqual({ version });
    }
    const v2 = await checkGguf(bytesReader(patched(good, (v) => v.setUint32(4, 2, true))));
    expect(v2.version).toBe(2);
  });

  const required = [
    'general.architecture',
    'llama.context_length',
    'llama.embedding_length',
    'llama.block_count',
    'llama.feed_forward_length',
    'llama.attention.head_count',
    'llama.attention.layer_norm_rms_epsilon',
    'tokenizer.ggml.model',
    'tokenizer.ggml.tokens',
  ];
  it.each(required)('a missing %s', async (key) => {
    const err = await refusal(withMetadata((entries) => entries.filter(([k]) => k !== key)));
    expect(err.code).toBe('gguf/missing-key');
    expect(err.details).toEqual({ key });
    expect(err.message).toContain(key);
  });

  it.each<[string, string, GgufValue]>([
    ['head_count that does not divide the width', 'llama.attention.head_count', { type: 'uint32', value: 5 }],
    ['kv heads that do not divide the heads', 'llama.attention.head_count_kv', { type: 'uint32', value: 3 }],
    ['a zero context length', 'llama.context_length', { type: 'uint32', value: 0 }],
    ['a string where a count belongs', 'llama.feed_forward_length', { type: 'string', value: '256' }],
    ['a per-layer array of the wrong length', 'llama.feed_forward_length', { type: 'uint32[]', value: [256, 256, 256] }],
    ['a float32 epsilon stored as an integer', 'llama.attention.layer_norm_rms_epsilon', { type: 'uint32', value: 1 }],
    ['a short scores array', 'tokenizer.ggml.scores', { type: 'float32[]', value: [0, 0, 0] }],
    ['token types of the wrong element type', 'tokenizer.ggml.token_type', { type: 'float32[]', value: tinyVocabulary().types }],
    ['a BOS id outside the vocabulary', 'tokenizer.ggml.bos_token_id', { type: 'uint32', value: 100_000 }],
    ['an architecture that is not a string', 'general.architecture', { type: 'uint32', value: 1 }],
  ])('a bad value: %s', async (_, key, value) => {
    const err = await refusal(withMetadata(replace(key, value)));
    expect(err.code).toBe('gguf/bad-value');
    expect(err.details).toEqual({ key });
  });

  it('a duplicated key and a bad alignment', async () => {
    const dup = await refusal(withMetadata((e) => [...e, ['llama.block_count', { type: 'uint32', value: 2 }]]));
    expect(dup.code).toBe('gguf/bad-value');
    const align = await refusal(withMetadata((e) => [['general.alignment', { type: 'uint32', value: 24 }], ...e]));
    expect(align).toMatchObject({ code: 'gguf/bad-value', details: { key: 'general.alignment' } });
  });

  it('huge counts and length fields, without allocating for them', async () => {
    const huge = 2n ** 40n;
    const cases: Array<[string, (v: DataView) => void]> = [
      ['tensor count', (v) => v.setBigUint64(8, huge, true)],
      ['metadata count', (v) => v.setBigUint64(16, 2n ** 62n, true)],
      ['key length', (v) => v.setBigUint64(24, huge, true)],
      ['string value length', (v) => v.setBigUint64(after(good, 'general.architecture') + 4, huge, true)],
      ['array length', (v) => v.setBigUint64(after(good, 'tokenizer.ggml.tokens') + 8, huge, true)],
      ['tensor dimension', (v) => v.setBigUint64(after(good, 'token_embd.weight') + 4, 2n ** 60n, true)],
    ];
    for (const [what, edit] of cases) {
      const err = await refusal(patched(good, edit));
      expect(err.code, what).toBe('gguf/limit-exceeded');
    }
    // Lengths under the limits that the file cannot hold are truncation, found before reading element by element.
    const long = await refusal(patched(good, (v) => v.setBigUint64(after(good, 'tokenizer.ggml.tokens') + 8, 9_000_000n, true)));
    expect(long.code).toBe('gguf/truncated');
    const longString = await refusal(patched(good, (v) => v.setBigUint64(after(good, 'tokenizer.chat_template') + 4, 10_000_000n, true)));
    expect(longString.code).toBe('gguf/truncated');
  });

  it('misaligned, overlapping and out-of-range tensor offsets', async () => {
    const field = tensorOffsetField(good, 'output.weight');
    const offset = new DataView(good.buffer).getBigUint64(field, true);
    for (const [value, pattern] of [
      [offset + 4n, /not a multiple of the alignment/],
      [offset - 32n, /the tensors before it end at/],
      [2n ** 40n, /the tensors before it end at/],
    ] as const) {
      const err = await refusal(patched(good, (v) => v.setBigUint64(field, value, true)));
      expect(err.code).toBe('gguf/bad-tensor');
      expect(err.details).toEqual({ tensor: 'output.weight' });
      expect(err.message).toMatch(pattern);
    }
    const first = await refusal(patched(good, (v) => v.setBigUint64(tensorOffsetField(good, 'token_embd.weight'), 32n, true)));
    expect(first).toMatchObject({ code: 'gguf/bad-tensor', details: { tensor: 'token_embd.weight' } });
  });

  it('bad tensor types, dimensions and names', async () => {
    const typeField = tensorOffsetField(good, 'output.weight') - 4;
    expect((await refusal(patched(good, (v) => v.setUint32(typeField, 99, true)))).code).toBe('gguf/bad-tensor');
    // Q4_K packs rows in blocks of 256 elements: 64-element rows cannot be Q4_K.
    const q4k = await refusal(patched(good, (v) => v.setUint32(typeField, 12, true)));
    expect(q4k.message).toMatch(/not a multiple of the Q4_K block size 256/);
    expect((await refusal(patched(good, (v) => v.setUint32(after(good, 'output.weight'), 5, true)))).code).toBe('gguf/bad-tensor');
    const spec = tinyModelSpec();
    const longName = writeGguf({ ...spec, tensors: [...spec.tensors, { name: 'x'.repeat(64), dims: [8], ggmlType: 0, data: new Uint8Array(32) }] });
    expect((await refusal(longName)).code).toBe('gguf/bad-tensor');
    expect((await refusal(writeGguf({ ...spec, tensors: [] }))).code).toBe('gguf/bad-tensor');
  });
});

describe('the native loader checks before llama.cpp sees a file', () => {
  it('sizes tensors with the block and type sizes of the llama.cpp it guards', async () => {
    // node-llama-cpp's binding exposes ggml's tables (an internal API: this test breaks loudly if it goes).
    type Sizes = { getBlockSizeForGgmlType(t: number): number | undefined; getTypeSizeForGgmlType(t: number): number | undefined };
    const { _bindings: native } = (await getLlama({ gpu: false, build: 'never', maxThreads: 1 })) as unknown as { _bindings: Sizes };
    for (let id = 0; id < 64; id++) {
      const ours = GGML_TYPES.get(id);
      const theirs = [native.getBlockSizeForGgmlType(id) ?? 0, native.getTypeSizeForGgmlType(id) ?? 0];
      expect(theirs, `ggml type ${id}`).toEqual(ours ? [ours.blockSize, ours.typeSize] : [0, 0]);
    }
  });

  it('a file without feed_forward_length aborts node-llama-cpp natively when not checked', async () => {
    const path = join(dir, 'no-ff.gguf');
    await writeFile(path, withMetadata((e) => e.filter(([k]) => k !== 'llama.feed_forward_length')));
    const child = spawnSync(process.execPath, ['--import', 'tsx', 'test/support/native-run.ts', 'raw-load', path], { encoding: 'utf8', timeout: 60_000 });
    expect(child.signal).toBe('SIGABRT'); // the whole process dies: this is why checkGguf exists
  });

  it('loadNativeModel refuses each bad file with its typed error, and the process lives on', async () => {
    const bad: Array<[string, Uint8Array, string]> = [
      ['truncated', good.subarray(0, good.length - 1000), 'gguf/truncated'],
      ['bad magic', patched(good, (v) => v.setUint32(0, 0x4c4d4747, true)), 'gguf/bad-magic'],
      ['version', patched(good, (v) => v.setUint32(4, 1, true)), 'gguf/unsupported-version'],
      ['no ff', withMetadata((e) => e.filter(([k]) => k !== 'llama.feed_forward_length')), 'gguf/missing-key'],
      ['no heads', withMetadata((e) => e.filter(([k]) => k !== 'llama.attention.head_count')), 'gguf/missing-key'],
      ['huge array', patched(good, (v) => v.setBigUint64(after(good, 'tokenizer.ggml.tokens') + 8, 2n ** 40n, true)), 'gguf/limit-exceeded'],
      ['misaligned', patched(good, (v) => v.setBigUint64(tensorOffsetField(good, 'output.weight'), 4n, true)), 'gguf/bad-tensor'],
    ];
    for (const [name, bytes, code] of bad) {
      const path = join(dir, `${name}.gguf`);
      await writeFile(path, bytes);
      await expect(loadNativeModel(path), name).rejects.toMatchObject({ name: 'FerryError', code });
    }
    await expect(loadNativeModel(join(dir, 'absent.gguf'))).rejects.toMatchObject({ code: 'gguf/unreadable' });
    // Still alive, and the same loader loads a good file.
    const path = join(dir, 'good.gguf');
    await writeFile(path, good);
    const { model, info } = await loadNativeModel(path);
    expect(info.vocabSize).toBe(tinyVocabulary().tokens.length);
    expect(model.fileInsights.trainContextSize).toBe(512);
    await model.dispose();
  });
});
