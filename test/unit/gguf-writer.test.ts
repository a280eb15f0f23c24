import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf, GGUFValueType } from '@huggingface/gguf';
import { Template } from '@huggingface/jinja';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../src/core/errors.ts';
import { f32ToF16Bits } from '../../src/core/llm/gguf/f16.ts';
import { generateTinyModel, TINY_MODEL_DEFAULTS, type TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';
import { genModelCommand } from '../../server/commands/gen-model.ts';

// The generator is checked by an independent reader (@huggingface/gguf), not by our own checker.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-gguf-writer-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function parse(bytes: Uint8Array, name: string) {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return gguf(path, { allowLocalFile: true, typedMetadata: true });
}

/** The tensors llama.cpp's llama architecture expects (ggml order [ne0, ne1]), written out independently here. */
function expectedTensors(p: TinyModelParams, vocab: number): Array<[string, number[], number]> {
  const f = p.type === 'f16' ? 1 : 0;
  const kv = (p.embd / p.heads) * p.kvHeads;
  const list: Array<[string, number[], number]> = [['token_embd.weight', [p.embd, vocab], f]];
  for (let l = 0; l < p.layers; l++) {
    list.push(
      [`blk.${l}.attn_norm.weight`, [p.embd], 0],
      [`blk.${l}.attn_q.weight`, [p.embd, p.embd], f],
      [`blk.${l}.attn_k.weight`, [p.embd, kv], f],
      [`blk.${l}.attn_v.weight`, [p.embd, kv], f],
      [`blk.${l}.attn_output.weight`, [p.embd, p.embd], f],
      [`blk.${l}.ffn_norm.weight`, [p.embd], 0],
      [`blk.${l}.ffn_gate.weight`, [p.embd, p.ff], f],
      [`blk.${l}.ffn_up.weight`, [p.embd, p.ff], f],
      [`blk.${l}.ffn_down.weight`, [p.ff, p.embd], f],
    );
  }
  list.push(['output_norm.weight', [p.embd], 0], ['output.weight', [p.embd, vocab], f]);
  return list;
}

/** Byte equality without vitest's element-by-element deep compare (seconds for a model). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

const configs: TinyModelParams[] = [
  TINY_MODEL_DEFAULTS,
  { ...TINY_MODEL_DEFAULTS, type: 'f16' },
  { embd: 96, layers: 3, heads: 6, kvHeads: 3, ff: 160, ctx: 256, type: 'f16', seed: 7 },
  { embd: 32, layers: 1, heads: 2, kvHeads: 2, ff: 64, ctx: 128, type: 'f32', seed: 123 },
];

describe('generateTinyModel', () => {
  it.each(configs)('parses with @huggingface/gguf: %o', async (p) => {
    const bytes = generateTinyModel(p);
    const { metadata, typedMetadata, tensorInfos, tensorDataOffset } = await parse(bytes, `m-${p.type}-${p.embd}.gguf`);
    const tokens = typedMetadata['tokenizer.ggml.tokens']?.value as string[];
    const types = typedMetadata['tokenizer.ggml.token_type']?.value as number[];
    const scores = typedMetadata['tokenizer.ggml.scores']?.value as number[];

    expect(metadata.version).toBe(3);
    expect(tensorDataOffset % 32n).toBe(0n);
    const u32 = (key: string) => ({ value: typedMetadata[key]?.value, type: typedMetadata[key]?.type });
    expect(typedMetadata['general.architecture']?.value).toBe('llama');
    expect(u32('llama.context_length')).toEqual({ value: p.ctx, type: GGUFValueType.UINT32 });
    expect(u32('llama.embedding_length')).toEqual({ value: p.embd, type: GGUFValueType.UINT32 });
    expect(u32('llama.block_count')).toEqual({ value: p.layers, type: GGUFValueType.UINT32 });
    expect(u32('llama.feed_forward_length')).toEqual({ value: p.ff, type: GGUFValueType.UINT32 });
    expect(u32('llama.attention.head_count')).toEqual({ value: p.heads, type: GGUFValueType.UINT32 });
    expect(u32('llama.attention.head_count_kv')).toEqual({ value: p.kvHeads, type: GGUFValueType.UINT32 });
    expect(typedMetadata['llama.attention.layer_norm_rms_epsilon']?.type).toBe(GGUFValueType.FLOAT32);
    expect(typedMetadata['tokenizer.ggml.model']?.value).toBe('llama');
    expect(typedMetadata['tokenizer.ggml.token_type']?.subType).toBe(GGUFValueType.INT32);
    expect(typedMetadata['tokenizer.ggml.scores']?.subType).toBe(GGUFValueType.FLOAT32);

    // The SPM byte-fallback vocabulary of STACK.md.
    expect(tokens.slice(0, 5)).toEqual(['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>']);
    expect(types.slice(0, 5)).toEqual([2, 3, 3, 3, 3]);
    expect(tokens.slice(5, 261)).toEqual(Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
    expect(new Set(types.slice(5, 261))).toEqual(new Set([6]));
    expect(tokens).toContain('▁');
    expect(new Set(tokens).size).toBe(tokens.length);
    tokens.forEach((token, id) => {
      if (id < 261) return;
      expect(types[id]).toBe(1);
      expect(scores[id]).toBe([...token].length === 1 ? -1000 : [...token].length);
      if ([...token].length > 2) expect(tokens).toContain(token.slice(0, -1)); // every prefix of a ▁word exists
    });
    expect(typedMetadata['tokenizer.ggml.bos_token_id']?.value).toBe(1);
    expect(typedMetadata['tokenizer.ggml.eos_token_id']?.value).toBe(2);

    const rendered = new Template(typedMetadata['tokenizer.chat_template']?.value as string).render({
      messages: [{ role: 'user', content: 'hi' }],
      add_generation_prompt: true,
    });
    expect(rendered).toBe('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n');

    const expected = expectedTensors(p, tokens.length);
    expect(tensorInfos.map((t) => [t.name, t.shape.map(Number), t.dtype])).toEqual(expected);

    // Special and byte tokens have all-zero output rows; normal tokens do not.
    const output = tensorInfos.find((t) => t.name === 'output.weight');
    const width = p.type === 'f16' ? 2 : 4;
    const rowBytes = p.embd * width;
    const outputStart = Number(tensorDataOffset + (output?.offset ?? 0n));
    const row = (id: number) => bytes.subarray(outputStart + id * rowBytes, outputStart + (id + 1) * rowBytes);
    for (const id of [0, 1, 2, 3, 4, 5, 200, 260]) expect(row(id).every((b) => b === 0)).toBe(true);
    for (const id of [261, 300, tokens.length - 1]) expect(row(id).some((b) => b !== 0)).toBe(true);
    const norm = tensorInfos.find((t) => t.name === 'output_norm.weight');
    const normView = new DataView(bytes.buffer, bytes.byteOffset + Number(tensorDataOffset + (norm?.offset ?? 0n)), p.embd * 4);
    expect(Array.from({ length: p.embd }, (_, i) => normView.getFloat32(i * 4, true))).toEqual(new Array(p.embd).fill(1));
  });

  it('writes an f16 file whose weights are the f32 file’s, rounded', async () => {
    const a = await parse(generateTinyModel({ type: 'f32', seed: 5 }), 'r32.gguf');
    const b = await parse(generateTinyModel({ type: 'f16', seed: 5 }), 'r16.gguf');
    const f32 = await readFile(join(dir, 'r32.gguf'));
    const f16 = await readFile(join(dir, 'r16.gguf'));
    const q = a.tensorInfos.find((t) => t.name === 'blk.1.attn_q.weight');
    const q16 = b.tensorInfos.find((t) => t.name === 'blk.1.attn_q.weight');
    const v32 = new DataView(f32.buffer, f32.byteOffset + Number(a.tensorDataOffset + (q?.offset ?? 0n)));
    const v16 = new DataView(f16.buffer, f16.byteOffset + Number(b.tensorDataOffset + (q16?.offset ?? 0n)));
    let nonZero = 0;
    for (let i = 0; i < 64 * 64; i++) {
      const x = v32.getFloat32(i * 4, true);
      const y = f16ToF32(v16.getUint16(i * 2, true));
      expect(Math.abs(x - y)).toBeLessThanOrEqual(Math.abs(x) * 2 ** -11 + 2 ** -25);
      if (x !== 0) nonZero++;
    }
    expect(nonZero).toBe(64 * 64);
  });

  it('rounds f32 to f16 to nearest, ties to even', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up to Inf
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // a tie: to even (zero)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // a tie: to even (2)
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // a tie: to even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(1 / 3)).toBe(0x3555);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
    for (let bits = 0; bits < 0x7c00; bits += 7) expect(f32ToF16Bits(f16ToF32(bits))).toBe(bits); // exact values survive
  });

  it('is deterministic: same parameters and seed → identical bytes; another seed → different weights', () => {
    for (const p of configs) expect(sameBytes(generateTinyModel(p), generateTinyModel({ ...p }))).toBe(true);
    const a = generateTinyModel({ seed: 1 });
    const b = generateTinyModel({ seed: 2 });
    expect(a.length).toBe(b.length);
    expect(sameBytes(a, b)).toBe(false);
  });

  it('refuses impossible sizes with a typed error', () => {
    for (const bad of [{ embd: 30, heads: 4 }, { heads: 4, kvHeads: 3 }, { layers: 0 }, { embd: 12, heads: 4 }, { seed: -1 }, { ff: 1.5 }]) {
      let error: unknown;
      try {
        generateTinyModel(bad);
      } catch (err) {
        error = err;
      }
      expect(isFerryError(error, 'gguf/bad-params'), JSON.stringify(bad)).toBe(true);
    }
  });

  it('`ferry gen-model` writes the same bytes as the generator', async () => {
    const out = join(dir, 'cli.gguf');
    await genModelCommand(['--out', out, '--embd', '32', '--layers', '1', '--heads', '2', '--kv-heads', '1', '--ff', '64', '--ctx', '128', '--type', 'f16', '--seed', '9']);
    const expected = generateTinyModel({ embd: 32, layers: 1, heads: 2, kvHeads: 1, ff: 64, ctx: 128, type: 'f16', seed: 9 });
    expect(sameBytes(await readFile(out), expected)).toBe(true);
    await expect(genModelCommand(['--embd', '32'])).rejects.toThrow(/--out/);
    await expect(genModelCommand(['--out', out, '--type', 'q4'])).rejects.toThrow(/f32 or f16/);
  });
});
