import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesReader, checkGguf, generateTinyModel, tokenizerOnlyModel } from '../../../src/core/llm/gguf/index.ts';
import { writeGguf } from '../../../src/core/llm/gguf/writer.ts';
import { tinyModelSpec } from '../../../src/core/llm/gguf/tiny-model.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { GREEDY_PROMPTS, TEST_MODELS } from '../../support/prompts.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

describe.each(TEST_MODELS)('a tokenizer-only model of the tiny model %o', (params) => {
  let dir: Awaited<ReturnType<typeof modelDir>>;
  let full: NodeLlamaEngine;
  let tokenizer: NodeLlamaEngine;
  let source: Uint8Array;
  let bytes: Uint8Array;

  beforeAll(async () => {
    dir = await modelDir();
    source = generateTinyModel(params);
    bytes = await tokenizerOnlyModel(bytesReader(source));
    const file = path.join(dir.dir, 'tokenizer.gguf');
    await writeFile(file, bytes);
    full = await cpuEngine(await dir.model('full.gguf', params));
    tokenizer = await cpuEngine(file);
  });
  afterAll(async () => {
    await tokenizer?.dispose();
    await full?.dispose();
    await dir?.cleanup();
  });

  it('is small, passes the checker, and carries the same tokenizer and chat template', async () => {
    const [a, b] = await Promise.all([checkGguf(bytesReader(source)), checkGguf(bytesReader(bytes))]);
    expect(b.tokenizerHash).toBe(a.tokenizerHash);
    expect(b.chatTemplate).toBe(a.chatTemplate);
    expect([b.vocabSize, b.bosTokenId, b.eosTokenId]).toEqual([a.vocabSize, a.bosTokenId, a.eosTokenId]);
    expect(b.fileSize).toBeLessThan(a.vocabSize * 16 + 64 * 1024);
    expect(tokenizer.info.tokenizerId).toBe(full.info.tokenizerId);
  });

  it('tokenizes and detokenizes every prompt exactly as the model does, with and without special tokens', async () => {
    for (const prompt of GREEDY_PROMPTS) {
      for (const special of [false, true]) {
        const ids = await full.tokenize(prompt, { special });
        expect(await tokenizer.tokenize(prompt, { special }), prompt).toEqual(ids);
        expect(await tokenizer.detokenize(ids), prompt).toBe(await full.detokenize(ids));
      }
    }
  });
});

it('refuses a file without a vocabulary, naming the key', async () => {
  const spec = tinyModelSpec();
  const noVocabulary = writeGguf({ ...spec, metadata: spec.metadata.filter(([key]) => key !== 'tokenizer.ggml.tokens') });
  await expect(tokenizerOnlyModel(bytesReader(noVocabulary))).rejects.toMatchObject({ code: 'gguf/missing-key', details: { key: 'tokenizer.ggml.tokens' } });
});
