import { FerryError } from '../../errors.ts';
import { GgufValueType } from './format.ts';
import { readGgufHeader, utf8, type GgufEntry, type GgufHeader, type GgufScalar } from './header.ts';
import type { ByteReader } from './reader.ts';

/**
 * The gate in front of llama.cpp (node-llama-cpp, wllama): reads only a model file's header and refuses, with a
 * typed error, anything llama.cpp would choke on. This matters: a file without feed_forward_length or
 * head_count does not fail in llama.cpp, it aborts the whole process; a short scores array is read out of bounds.
 */

export interface GgufModelInfo {
  readonly version: 2 | 3;
  readonly architecture: string;
  readonly name: string | undefined;
  readonly contextLength: number;
  readonly embeddingLength: number;
  readonly blockCount: number;
  /** The largest per-layer value where the file gives one per layer. */
  readonly feedForwardLength: number;
  readonly headCount: number;
  readonly headCountKv: number;
  readonly vocabSize: number;
  readonly tokenizerModel: string;
  /**
   * Hex SHA-256 over the raw metadata that maps text to token ids (model, pre-tokenizer, tokens, token types,
   * scores, merges, BOS/space-prefix flags): two files with the same hash tokenize alike.
   */
  readonly tokenizerHash: string;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly chatTemplate: string | undefined;
  readonly fileSize: number;
  readonly tensorCount: number;
}

/** Keys whose bytes define tokenization, hashed in this order. */
const TOKENIZER_KEYS = [
  'tokenizer.ggml.model',
  'tokenizer.ggml.pre',
  'tokenizer.ggml.tokens',
  'tokenizer.ggml.token_type',
  'tokenizer.ggml.scores',
  'tokenizer.ggml.merges',
  'tokenizer.ggml.add_bos_token',
  'tokenizer.ggml.add_space_prefix',
];

/** Keys that llama.cpp needs for a given architecture beyond the ones every transformer needs. */
const ARCHITECTURE_KEYS: ReadonlyMap<string, readonly string[]> = new Map([['llama', ['attention.layer_norm_rms_epsilon']]]);

const INTEGER_TYPES: ReadonlySet<number> = new Set([
  GgufValueType.UINT8, GgufValueType.INT8, GgufValueType.UINT16, GgufValueType.INT16, GgufValueType.UINT32,
  GgufValueType.INT32, GgufValueType.UINT64, GgufValueType.INT64,
]);

export async function checkGguf(reader: ByteReader): Promise<GgufModelInfo> {
  const header = await readGgufHeader(reader);
  const m = new Metadata(header);

  const arch = m.string('general.architecture');
  const key = (suffix: string) => `${arch}.${suffix}`;
  const contextLength = m.integer(key('context_length'), 1);
  const embeddingLength = m.integer(key('embedding_length'), 1);
  const blockCount = m.integer(key('block_count'), 1, 65_536);
  const ff = m.perLayer(key('feed_forward_length'), blockCount);
  const heads = m.perLayer(key('attention.head_count'), blockCount);
  const kvHeads = m.has(key('attention.head_count_kv')) ? m.perLayer(key('attention.head_count_kv'), blockCount) : heads;
  const hasKeyLength = m.has(key('attention.key_length'));
  heads.forEach((h, layer) => {
    const kv = kvHeads[layer] ?? 0;
    if (h === 0) return;
    // Without an explicit key_length, llama.cpp derives the head width as embedding_length / head_count.
    if (!hasKeyLength && embeddingLength % h !== 0) {
      throw m.bad(key('attention.head_count'), `${h} heads do not divide embedding_length ${embeddingLength}`);
    }
    if (kv < 1 || h % kv !== 0) {
      throw m.bad(key('attention.head_count_kv'), `layer ${layer} has ${h} heads and ${kv} key/value heads; the second must divide the first`);
    }
  });
  for (const suffix of ARCHITECTURE_KEYS.get(arch) ?? []) {
    const eps = m.float32(key(suffix));
    if (!(eps > 0 && eps < 1)) throw m.bad(key(suffix), `it is ${eps}; expected a small positive number`);
  }

  const tokenizerModel = m.string('tokenizer.ggml.model');
  const tokens = m.array('tokenizer.ggml.tokens', GgufValueType.STRING);
  if (tokens.length === 0) throw m.bad('tokenizer.ggml.tokens', 'the vocabulary is empty');
  // llama.cpp reads these arrays as raw int32/float32 for every token: a wrong type or length is read out of bounds.
  for (const [name, type] of [['tokenizer.ggml.token_type', GgufValueType.INT32], ['tokenizer.ggml.scores', GgufValueType.FLOAT32]] as const) {
    if (m.has(name) && m.array(name, type).length !== tokens.length) {
      throw m.bad(name, `it has ${m.array(name, type).length} entries for ${tokens.length} tokens`);
    }
  }
  if (m.has('tokenizer.ggml.merges')) m.array('tokenizer.ggml.merges', GgufValueType.STRING);
  const tokenId = (name: string) => (m.has(name) ? m.integer(name, 0, tokens.length - 1) : undefined);
  const chatTemplate = m.has('tokenizer.chat_template') ? m.string('tokenizer.chat_template') : undefined;

  if (header.tensors.length === 0) {
    throw new FerryError('gguf/bad-tensor', 'The model file has no tensors (it may be a vocabulary-only file). Choose a complete model.');
  }

  return {
    version: header.version,
    architecture: arch,
    name: m.has('general.name') ? m.string('general.name') : undefined,
    contextLength,
    embeddingLength,
    blockCount,
    feedForwardLength: Math.max(...ff),
    headCount: Math.max(...heads),
    headCountKv: Math.max(...kvHeads),
    vocabSize: tokens.length,
    tokenizerModel,
    tokenizerHash: await tokenizerHash(reader, header),
    bosTokenId: tokenId('tokenizer.ggml.bos_token_id'),
    eosTokenId: tokenId('tokenizer.ggml.eos_token_id'),
    chatTemplate,
    fileSize: header.fileSize,
    tensorCount: header.tensors.length,
  };
}

async function tokenizerHash(reader: ByteReader, header: GgufHeader): Promise<string> {
  const encoder = new TextEncoder();
  const parts: Uint8Array[] = [encoder.encode('ferry-tokenizer-v1')];
  for (const key of TOKENIZER_KEYS) {
    const span = header.metadata.get(key)?.span;
    const bytes = span ? await reader.read(span[0], span[1] - span[0]) : new Uint8Array(0);
    const name = encoder.encode(key);
    const framing = new DataView(new ArrayBuffer(13));
    framing.setUint32(0, name.length, true);
    framing.setUint8(4, span ? 1 : 0);
    framing.setBigUint64(5, BigInt(bytes.length), true);
    parts.push(name, new Uint8Array(framing.buffer), bytes);
  }
  const total = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    total.set(part, at);
    at += part.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', total));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Typed access to metadata entries, each failure a FerryError naming the key. */
class Metadata {
  constructor(private readonly header: GgufHeader) {}

  has(key: string): boolean {
    return this.header.metadata.has(key);
  }

  bad(key: string, why: string): FerryError {
    return new FerryError('gguf/bad-value', `The model file's ${key} is invalid: ${why}. The file is malformed; convert or download it again.`, {
      details: { key },
    });
  }

  private get(key: string): GgufEntry {
    const entry = this.header.metadata.get(key);
    if (!entry) {
      throw new FerryError(
        'gguf/missing-key',
        `The model file lacks ${key}, which llama.cpp needs to load it. The file is incomplete or not a llama.cpp model; ` +
          'convert it again with a current llama.cpp (convert_hf_to_gguf.py) or choose another file.',
        { details: { key } },
      );
    }
    return entry;
  }

  string(key: string): string {
    const { type, value } = this.get(key);
    if (type !== GgufValueType.STRING || !(value instanceof Uint8Array)) throw this.bad(key, 'expected a string');
    return utf8(value, key);
  }

  float32(key: string): number {
    const { type, value } = this.get(key);
    if (type !== GgufValueType.FLOAT32 || typeof value !== 'number') throw this.bad(key, 'expected a float32');
    return value;
  }

  integer(key: string, min: number, max = 0xffffffff): number {
    const { type, value } = this.get(key);
    if (!INTEGER_TYPES.has(type) || isList(value)) throw this.bad(key, 'expected an integer');
    return this.inRange(key, value, min, max);
  }

  /** A per-layer count: one integer for every layer, or an array with one per layer (at least one non-zero). */
  perLayer(key: string, layers: number): number[] {
    const entry = this.get(key);
    if (INTEGER_TYPES.has(entry.type)) return new Array<number>(layers).fill(this.integer(key, 1));
    const values = entry.value;
    if (entry.type !== GgufValueType.ARRAY || !INTEGER_TYPES.has(entry.itemType ?? -1) || !isList(values)) {
      throw this.bad(key, 'expected an integer or an array of integers');
    }
    if (values.length !== layers) throw this.bad(key, `it has ${values.length} entries for ${layers} layers`);
    const counts = values.map((v) => this.inRange(key, v, 0, 0xffffffff));
    if (Math.max(...counts) < 1) throw this.bad(key, 'every layer has 0');
    return counts;
  }

  array(key: string, itemType: GgufValueType): readonly GgufScalar[] {
    const entry = this.get(key);
    if (entry.type !== GgufValueType.ARRAY || entry.itemType !== itemType || !isList(entry.value)) {
      throw this.bad(key, `expected an array of type ${itemType}`);
    }
    return entry.value;
  }

  private inRange(key: string, value: GgufScalar, min: number, max: number): number {
    const n = typeof value === 'bigint' || typeof value === 'number' ? Number(value) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw this.bad(key, `it is ${String(value)}; expected an integer from ${min} to ${max}`);
    return n;
  }
}

function isList(value: GgufScalar | readonly GgufScalar[]): value is readonly GgufScalar[] {
  return Array.isArray(value);
}
