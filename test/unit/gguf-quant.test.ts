/**
 * Quantized generated models: the encoders' bytes mean what ggml reads them as. The layout is checked against
 * llama.cpp itself: a model whose only path from a token to the logits is its (quantized) embedding row — zero
 * attention output and feed-forward down weights, an f32 output matrix — picks the next token greedily from exactly
 * that row as ggml dequantizes it, so node-llama-cpp's pick must be the one computed here from our dequantize().
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/core/errors.ts';
import { dequantize, quantize, QUANT_TYPES, type QuantType } from '../../src/core/llm/gguf/quantize.ts';
import { generateTinyModel, tinyModelSpec, tinyVocabulary, TokenType } from '../../src/core/llm/gguf/tiny-model.ts';
import { writeGguf, type GgufTensorSpec } from '../../src/core/llm/gguf/writer.ts';
import { seededRandom } from '../../src/core/random.ts';
import { loadNativeModel } from '../../server/llm/load-native.ts';
import { greedyRuns } from '../support/native-greedy.ts';
import { GREEDY_PROMPTS } from '../support/prompts.ts';

const TYPES: QuantType[] = ['q8_0', 'q4_0', 'q4_k'];

function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-gguf-quant-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(TYPES)('%s blocks', (type) => {
  const { blockSize, typeSize } = QUANT_TYPES[type];

  it('round-trips within the type’s step, and zeros stay zeros', () => {
    const values = randomValues(blockSize * 8, 3, 2);
    values.fill(0, 0, blockSize); // an all-zero block
    const bytes = quantize(type, values);
    expect(bytes.length).toBe(8 * typeSize);
    const back = dequantize(type, bytes);
    expect(back.subarray(0, blockSize).every((v) => v === 0)).toBe(true);
    // Q8_0: half a step of max/127. Q4_0: half a step of max/8, but a whole one at the clamped end opposite the
    // block's largest value. Q4_K: half a step of range/15, plus the 6-bit scales' rounding.
    const bound = type === 'q8_0' ? (2 / 127) * 0.51 : type === 'q4_0' ? (2 / 8) * 1.01 : (4 / 15) * 0.75;
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i]! - back[i]!));
    expect(worst).toBeLessThan(bound);
    expect(worst).toBeGreaterThan(0);
  });

  it('refuses a partial block', () => {
    expect(() => quantize(type, new Float32Array(blockSize + 1))).toThrow(expect.objectContaining({ code: 'gguf/bad-tensor' }) as Error);
  });
});

it('writes a model of each type with the right ggml types and file type, refusing rows that are not whole blocks', () => {
  for (const type of TYPES) {
    const spec = tinyModelSpec({ type, embd: 256, heads: 4, kvHeads: 2, ff: 256 });
    expect(spec.metadata.find(([key]) => key === 'general.file_type')?.[1]).toEqual({ type: 'uint32', value: { q8_0: 7, q4_0: 2, q4_k: 14 }[type] });
    for (const tensor of spec.tensors) expect(tensor.ggmlType, tensor.name).toBe(tensor.dims.length === 1 ? 0 : QUANT_TYPES[type].ggmlType);
  }
  let error: unknown;
  try {
    generateTinyModel({ type: 'q4_k' }); // 64 wide: not a whole 256-value block
  } catch (err) {
    error = err;
  }
  expect(isFerryError(error, 'gguf/bad-params')).toBe(true);
});

describe.each(TYPES)('llama.cpp reads %s as dequantize() does', (type) => {
  const E = 256;
  const vocab = tinyVocabulary();
  const base = tinyModelSpec({ type: 'f32', embd: E, heads: 4, kvHeads: 2, ff: 256, layers: 1, seed: 21 });
  const embedding = randomValues(E * vocab.tokens.length, 22);
  const embdBytes = quantize(type, embedding);
  const tensors: GgufTensorSpec[] = base.tensors.map((t) => {
    if (t.name === 'token_embd.weight') return { ...t, ggmlType: QUANT_TYPES[type].ggmlType, data: embdBytes };
    if (t.name.endsWith('attn_output.weight') || t.name.endsWith('ffn_down.weight')) return { ...t, data: new Uint8Array(t.data.length) };
    return t;
  });
  const output = new Float32Array(tensors.find((t) => t.name === 'output.weight')!.data.slice().buffer);

  /** The greedy pick after `id` from its dequantized row, and its margin over the runner-up. */
  function expectedPick(id: number): { pick: number; margin: number } {
    const row = dequantize(type, embdBytes.subarray((id * E * QUANT_TYPES[type].typeSize) / QUANT_TYPES[type].blockSize, ((id + 1) * E * QUANT_TYPES[type].typeSize) / QUANT_TYPES[type].blockSize));
    const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / E + 1e-5);
    const logits = Array.from({ length: vocab.tokens.length }, (_, v) => {
      let dot = 0;
      for (let k = 0; k < E; k++) dot += output[v * E + k]! * (row[k]! / rms);
      return dot;
    });
    const order = logits.map((l, v) => [l, v] as const).sort((a, b) => b[0] - a[0]);
    return { pick: order[0]![1], margin: order[0]![0] - order[1]![0] };
  }

  it('the next token after each of 24 tokens is the one our dequantized row gives', async () => {
    const path = join(dir, `layout-${type}.gguf`);
    await writeFile(path, writeGguf({ metadata: base.metadata, tensors }));
    const { model } = await loadNativeModel(path, { gpu: false, threads: 1 });
    const context = await model.createContext({ contextSize: 64, threads: 1 });
    try {
      const sequence = context.getSequence();
      // Tokens whose pick is clear by far more than float32's rounding.
      const cases = vocab.types.flatMap((t, id) => (t === TokenType.NORMAL ? [id] : [])).map((id) => ({ id, ...expectedPick(id) })).filter((c) => c.margin > 0.01).slice(0, 24);
      expect(cases).toHaveLength(24);
      for (const c of cases) {
        await sequence.clearHistory();
        let next: number | undefined;
        for await (const token of sequence.evaluate([c.id as Token], { temperature: 0 })) {
          next = token;
          break;
        }
        expect(next, `after token ${c.id}`).toBe(c.pick);
      }
    } finally {
      await context.dispose();
      await model.dispose();
    }
  });
});

it('node-llama-cpp generates 64 printable tokens from a Q8_0, a Q4_0 and a Q4_K model, the same each time', async () => {
  const vocab = tinyVocabulary();
  for (const [type, params] of [['q8_0', {}], ['q4_0', {}], ['q4_k', { embd: 256, ff: 256 }]] as const) {
    const path = join(dir, `gen-${type}.gguf`);
    await writeFile(path, generateTinyModel({ type, ...params }));
    const first = await greedyRuns(path, GREEDY_PROMPTS);
    for (const r of first) {
      expect(r.tokens, type).toHaveLength(64);
      expect(r.tokens.every((t) => vocab.types[t] === TokenType.NORMAL)).toBe(true);
      expect(new Set(r.tokens).size).toBeGreaterThan(8);
    }
    expect(await greedyRuns(path, GREEDY_PROMPTS)).toEqual(first);
  }
});
