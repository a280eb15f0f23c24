import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../src/core/errors.ts';
import { generateAll } from '../../../src/core/llm/index.ts';
import { generateTinyModel, tinyModelSpec } from '../../../src/core/llm/gguf/tiny-model.ts';
import { writeGguf } from '../../../src/core/llm/gguf/writer.ts';
import { resolveModel } from '../../../server/llm/models.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

/** The same bad files the gguf checker's own tests cover, here through the engine and model resolution. */
const good = generateTinyModel();

function locate(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i + needle.length;
  }
  throw new Error(`${text} not found`);
}

function patched(edit: (view: DataView) => void): Uint8Array {
  const copy = good.slice();
  edit(new DataView(copy.buffer));
  return copy;
}

const spec = tinyModelSpec();
const cases: Array<[string, Uint8Array, string]> = [
  ['truncated in the tensor data', good.subarray(0, good.length - 100), 'gguf/truncated'],
  ['truncated in the header', good.subarray(0, 1000), 'gguf/truncated'],
  ['an empty file', new Uint8Array(0), 'gguf/truncated'],
  ['a wrong magic number', patched((v) => v.setUint32(0, 0x4c4d4747, true)), 'gguf/bad-magic'],
  ['no feed_forward_length (aborts llama.cpp natively)', writeGguf({ ...spec, metadata: spec.metadata.filter(([k]) => k !== 'llama.feed_forward_length') }), 'gguf/missing-key'],
  ['no head_count', writeGguf({ ...spec, metadata: spec.metadata.filter(([k]) => k !== 'llama.attention.head_count') }), 'gguf/missing-key'],
  ['no vocabulary', writeGguf({ ...spec, metadata: spec.metadata.filter(([k]) => k !== 'tokenizer.ggml.tokens') }), 'gguf/missing-key'],
  ['an absurd tensor count', patched((v) => v.setBigUint64(8, 2n ** 40n, true)), 'gguf/limit-exceeded'],
  ['an absurd vocabulary length', patched((v) => v.setBigUint64(locate(good, 'tokenizer.ggml.tokens') + 4, 2n ** 40n, true)), 'gguf/limit-exceeded'],
];

let models: Awaited<ReturnType<typeof modelDir>>;
beforeAll(async () => {
  models = await modelDir();
});
afterAll(async () => {
  await models?.cleanup();
});

describe('bad model files are refused before llama.cpp sees them', () => {
  it.each(cases)('%s', async (name, bytes, code) => {
    const file = path.join(models.dir, `${name.replace(/\W+/g, '-')}.gguf`);
    await writeFile(file, bytes);
    for (const attempt of [() => cpuEngine(file), () => resolveModel(file, { dataDir: models.dir })]) {
      const err = await attempt().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FerryError);
      expect((err as FerryError).code).toBe(code);
    }
  });

  it('the process lives on and loads a good model afterwards', async () => {
    const engine = await cpuEngine(await models.model('good.gguf'), { slots: 1 });
    try {
      expect((await generateAll(engine, { prompt: { text: 'hello' }, maxTokens: 4 })).tokens).toHaveLength(4);
    } finally {
      await engine.dispose();
    }
  });

  it('refuses bad engine options with typed errors', async () => {
    const file = await models.model('options.gguf');
    for (const options of [{ slots: 0 }, { slots: 1.5 }, { slots: 257 }, { threads: 0 }, { contextSize: 8 }, { contextSize: 1 << 20 }]) {
      const err = await cpuEngine(file, options).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as FerryError).code, JSON.stringify(options)).toBe('llm/bad-option');
    }
  });

  it('serves as many sessions at once as llama.cpp allows in one context (256)', async () => {
    const engine = await cpuEngine(await models.model('many.gguf'), { slots: 256, contextSize: 32 });
    try {
      expect(engine.slots).toBe(256);
      const prompt = { tokens: [1, 300] };
      const alone = (await generateAll(engine, { prompt, maxTokens: 4, slot: 'alone' })).tokens;
      const together = await Promise.all(Array.from({ length: 256 }, (_, i) => generateAll(engine, { prompt, maxTokens: 4, slot: `s${i}` })));
      expect(together.map((r) => r.tokens)).toEqual(Array.from({ length: 256 }, () => alone));
    } finally {
      await engine.dispose();
    }
  });
});
