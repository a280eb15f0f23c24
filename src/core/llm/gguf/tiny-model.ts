import { seededRandom } from '../../random.ts';
import { FerryError } from '../../errors.ts';
import { f32ToF16Bits } from './f16.ts';
import { GGML_TYPE_F16, GGML_TYPE_F32 } from './format.ts';
import { QUANT_TYPES, quantize, type QuantType } from './quantize.ts';
import { writeGguf, type GgufFileSpec, type GgufTensorSpec, type GgufValue } from './writer.ts';

/**
 * Tiny llama-architecture GGUF models with seeded random weights, for tests and benchmarks: no weights can be
 * downloaded on the build machines, and llama.cpp (node-llama-cpp, wllama) runs these for real. Same parameters
 * and seed → byte-identical file, in Node and in the browser. See STACK.md for the metadata llama.cpp needs.
 */

export interface TinyModelParams {
  /** Embedding width (E). */
  readonly embd: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  /** Feed-forward width. */
  readonly ff: number;
  /** Training context length written to the metadata. */
  readonly ctx: number;
  /** Matrix weight type; norm weights are always f32. Quantized types need embd and ff in whole blocks (32; 256 for q4_k). */
  readonly type: WeightType;
  readonly seed: number;
}

export const TINY_MODEL_DEFAULTS: TinyModelParams = { embd: 64, layers: 2, heads: 4, kvHeads: 2, ff: 256, ctx: 512, type: 'f32', seed: 1 };

export type WeightType = 'f32' | 'f16' | QuantType;

/** general.file_type of a file whose matrices are all of one type (llama_ftype; q4_k is Q4_K_S's number). */
const FILE_TYPE: Readonly<Record<WeightType, number>> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, q4_k: 14 };

/** Token types of llama.cpp's vocabulary. */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

export const TINY_BOS_ID = 1;
export const TINY_EOS_ID = 2;

/** The usual ChatML template (Qwen's, without its default system prompt). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Words that get whole-word tokens (with every prefix, so SPM's pairwise merges can reach them). */
const WORDS = [
  'the', 'and', 'to', 'of', 'in', 'is', 'it', 'you', 'that', 'was', 'for', 'on', 'are', 'with', 'as', 'this', 'be',
  'at', 'from', 'have', 'or', 'one', 'by', 'not', 'what', 'all', 'can', 'hello', 'world', 'ferry', 'agent', 'model',
  'token', 'session', 'browser', 'device', 'cloud', 'story', 'once', 'upon', 'time', 'there', 'little',
];

export interface TinyVocabulary {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
}

/** The SPM byte-fallback vocabulary: specials, 256 byte tokens, single characters, then `▁word` prefixes. */
export function tinyVocabulary(): TinyVocabulary {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const add = (token: string, score: number, type: number) => {
    tokens.push(token);
    scores.push(score);
    types.push(type);
  };
  add('<unk>', 0, TokenType.UNKNOWN);
  add('<s>', 0, TokenType.CONTROL);
  add('</s>', 0, TokenType.CONTROL);
  add('<|im_start|>', 0, TokenType.CONTROL);
  add('<|im_end|>', 0, TokenType.CONTROL);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, TokenType.BYTE);
  add('▁', -1000, TokenType.NORMAL);
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c), -1000, TokenType.NORMAL);
  const seen = new Set(tokens);
  for (const word of WORDS) {
    for (let n = 1; n <= word.length; n++) {
      const piece = `▁${word.slice(0, n)}`;
      if (seen.has(piece)) continue;
      seen.add(piece);
      add(piece, piece.length, TokenType.NORMAL);
    }
  }
  return { tokens, scores, types };
}

/** The metadata and tensors of a tiny model, before writing (tests drop or alter parts of it). */
export function tinyModelSpec(overrides: Partial<TinyModelParams> = {}): GgufFileSpec {
  const p = resolveParams(overrides);
  const vocab = tinyVocabulary();
  const V = vocab.tokens.length;
  const E = p.embd;
  const headDim = E / p.heads;
  const kvWidth = headDim * p.kvHeads;

  const metadata: Array<readonly [string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: `ferry-tiny-e${E}-l${p.layers}-${p.type}-s${p.seed}` }],
    ['general.file_type', { type: 'uint32', value: FILE_TYPE[p.type] }],
    ['llama.vocab_size', { type: 'uint32', value: V }],
    ['llama.context_length', { type: 'uint32', value: p.ctx }],
    ['llama.embedding_length', { type: 'uint32', value: E }],
    ['llama.block_count', { type: 'uint32', value: p.layers }],
    ['llama.feed_forward_length', { type: 'uint32', value: p.ff }],
    ['llama.rope.dimension_count', { type: 'uint32', value: headDim }],
    ['llama.rope.freq_base', { type: 'float32', value: 10000 }],
    ['llama.attention.head_count', { type: 'uint32', value: p.heads }],
    ['llama.attention.head_count_kv', { type: 'uint32', value: p.kvHeads }],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: 1e-5 }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: 'float32[]', value: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: 'int32[]', value: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { type: 'uint32', value: TINY_BOS_ID }],
    ['tokenizer.ggml.eos_token_id', { type: 'uint32', value: TINY_EOS_ID }],
    ['tokenizer.ggml.unknown_token_id', { type: 'uint32', value: 0 }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }],
    ['tokenizer.chat_template', { type: 'string', value: CHATML_TEMPLATE }],
  ];

  // Weights are drawn in tensor order from one stream, so an f16 or quantized file is exactly the f32 file rounded.
  const random = seededRandom(p.seed);
  const uniform = (n: number, bound: number) => {
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = (random() * 2 - 1) * bound;
    return values;
  };
  // Uniform(±√(3/fan_in)) keeps activations near unit variance; `gain` widens the logits so greedy picks have
  // clear margins (no near-ties that float differences between engines could flip).
  const matrix = (name: string, ne0: number, ne1: number, gain = 1): GgufTensorSpec =>
    encode(name, [ne0, ne1], uniform(ne0 * ne1, gain * Math.sqrt(3 / ne0)), p.type);
  const norm = (name: string): GgufTensorSpec => encode(name, [E], new Float32Array(E).fill(1), 'f32');

  const tensors: GgufTensorSpec[] = [encode('token_embd.weight', [E, V], uniform(E * V, 1), p.type)];
  for (let l = 0; l < p.layers; l++) {
    const blk = `blk.${l}`;
    tensors.push(
      norm(`${blk}.attn_norm.weight`),
      matrix(`${blk}.attn_q.weight`, E, E),
      matrix(`${blk}.attn_k.weight`, E, kvWidth),
      matrix(`${blk}.attn_v.weight`, E, kvWidth),
      matrix(`${blk}.attn_output.weight`, E, E),
      norm(`${blk}.ffn_norm.weight`),
      matrix(`${blk}.ffn_gate.weight`, E, p.ff),
      matrix(`${blk}.ffn_up.weight`, E, p.ff),
      matrix(`${blk}.ffn_down.weight`, p.ff, E),
    );
  }
  tensors.push(norm('output_norm.weight'));
  const output = uniform(E * V, 3 * Math.sqrt(3 / E));
  // Special and byte tokens never win a greedy pick: output stays printable and never ends early.
  vocab.types.forEach((type, id) => {
    if (type !== TokenType.NORMAL) output.fill(0, id * E, (id + 1) * E);
  });
  tensors.push(encode('output.weight', [E, V], output, p.type));
  return { metadata, tensors };
}

export function generateTinyModel(params: Partial<TinyModelParams> = {}): Uint8Array<ArrayBuffer> {
  return writeGguf(tinyModelSpec(params));
}

function resolveParams(overrides: Partial<TinyModelParams>): TinyModelParams {
  const p = { ...TINY_MODEL_DEFAULTS, ...overrides };
  const bad = (why: string) =>
    new FerryError('gguf/bad-params', `Tiny model parameters are invalid: ${why}.`, { details: { params: p } });
  for (const key of ['embd', 'layers', 'heads', 'kvHeads', 'ff', 'ctx'] as const) {
    if (!Number.isInteger(p[key]) || p[key] < 1 || p[key] > 1 << 16) throw bad(`${key} must be an integer from 1 to 65536, got ${p[key]}`);
  }
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) throw bad(`seed must be an integer from 0 to 2^32-1, got ${p.seed}`);
  if (!Object.hasOwn(FILE_TYPE, p.type)) throw bad(`type must be one of ${Object.keys(FILE_TYPE).join(', ')}, got ${String(p.type)}`);
  if (p.type !== 'f32' && p.type !== 'f16') {
    const block = QUANT_TYPES[p.type].blockSize;
    if (p.embd % block !== 0 || p.ff % block !== 0) throw bad(`${p.type} quantizes rows in blocks of ${block}: embd (${p.embd}) and ff (${p.ff}) must be multiples of it`);
  }
  if (p.embd % p.heads !== 0) throw bad(`heads (${p.heads}) must divide embd (${p.embd})`);
  if ((p.embd / p.heads) % 2 !== 0) throw bad(`the head width embd/heads (${p.embd / p.heads}) must be even for RoPE`);
  if (p.heads % p.kvHeads !== 0) throw bad(`kvHeads (${p.kvHeads}) must divide heads (${p.heads})`);
  return p;
}

function encode(name: string, dims: number[], values: Float32Array, type: WeightType): GgufTensorSpec {
  if (type !== 'f32' && type !== 'f16') return { name, dims, ggmlType: QUANT_TYPES[type].ggmlType, data: quantize(type, values) };
  const width = type === 'f16' ? 2 : 4;
  const data = new Uint8Array(values.length * width);
  const view = new DataView(data.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    if (type === 'f16') view.setUint16(i * 2, f32ToF16Bits(v), true);
    else view.setFloat32(i * 4, v, true);
  }
  return { name, dims, ggmlType: type === 'f16' ? GGML_TYPE_F16 : GGML_TYPE_F32, data };
}

