import { FerryError } from '../../errors.ts';
import { GGML_TYPE_F16, GGML_TYPE_F32, GgufValueType } from './format.ts';
import { readGgufHeader } from './header.ts';
import type { ByteReader } from './reader.ts';
import { writeGguf, type GgufTensorSpec, type GgufValue } from './writer.ts';

/**
 * A model that can only tokenize: the source file's `tokenizer.*` metadata, byte for byte, on the smallest llama
 * llama.cpp will load (8 wide, one layer, zero weights, the output tied to the embedding). llama.cpp tokenizes from
 * that metadata alone, so this file maps text to ids and back exactly as the source does, in ~16 bytes per
 * vocabulary entry instead of the whole model. It serves engines that cannot tokenize themselves (wllama 3's
 * completion API takes text) and must still speak the session's token ids.
 */

const WIDTH = 8;
const FEED_FORWARD = 8;
const CONTEXT = 64;

export async function tokenizerOnlyModel(source: ByteReader): Promise<Uint8Array<ArrayBuffer>> {
  const header = await readGgufHeader(source);
  const tokens = header.metadata.get('tokenizer.ggml.tokens');
  if (!tokens || tokens.type !== GgufValueType.ARRAY || !Array.isArray(tokens.value) || tokens.value.length === 0) {
    throw new FerryError('gguf/missing-key', 'The model file has no vocabulary (tokenizer.ggml.tokens), so nothing can tokenize for it. Choose a complete llama.cpp model.', {
      details: { key: 'tokenizer.ggml.tokens' },
    });
  }
  const vocabSize = tokens.value.length;
  const copied: Array<readonly [string, GgufValue]> = [];
  for (const [key, entry] of header.metadata) {
    if (key.startsWith('tokenizer.')) copied.push([key, { type: 'raw', bytes: await source.read(entry.span[0], entry.span[1] - entry.span[0]) }]);
  }
  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const zeros = (name: string, dims: number[], ggmlType = GGML_TYPE_F32): GgufTensorSpec => ({
    name,
    dims,
    ggmlType,
    data: new Uint8Array(dims.reduce((a, b) => a * b, 1) * (ggmlType === GGML_TYPE_F16 ? 2 : 4)),
  });
  const norm = (name: string) => ({ ...zeros(name, [WIDTH]), data: new Uint8Array(new Float32Array(WIDTH).fill(1).buffer) });
  return writeGguf({
    metadata: [
      ['general.architecture', { type: 'string', value: 'llama' }],
      ['general.name', { type: 'string', value: 'ferry-tokenizer-only' }],
      ['llama.context_length', u32(CONTEXT)],
      ['llama.embedding_length', u32(WIDTH)],
      ['llama.block_count', u32(1)],
      ['llama.feed_forward_length', u32(FEED_FORWARD)],
      ['llama.rope.dimension_count', u32(WIDTH)],
      ['llama.attention.head_count', u32(1)],
      ['llama.attention.head_count_kv', u32(1)],
      ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: 1e-5 }],
      ...copied,
    ],
    tensors: [
      zeros('token_embd.weight', [WIDTH, vocabSize], GGML_TYPE_F16),
      norm('blk.0.attn_norm.weight'),
      zeros('blk.0.attn_q.weight', [WIDTH, WIDTH]),
      zeros('blk.0.attn_k.weight', [WIDTH, WIDTH]),
      zeros('blk.0.attn_v.weight', [WIDTH, WIDTH]),
      zeros('blk.0.attn_output.weight', [WIDTH, WIDTH]),
      norm('blk.0.ffn_norm.weight'),
      zeros('blk.0.ffn_gate.weight', [WIDTH, FEED_FORWARD]),
      zeros('blk.0.ffn_up.weight', [WIDTH, FEED_FORWARD]),
      zeros('blk.0.ffn_down.weight', [FEED_FORWARD, WIDTH]),
      norm('output_norm.weight'),
    ],
  });
}
