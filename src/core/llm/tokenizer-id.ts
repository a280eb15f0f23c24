import { FerryError } from '../errors.ts';
import { GgufValueType } from './gguf/format.ts';
import { readGgufHeader, utf8, type GgufEntry } from './gguf/header.ts';
import type { ByteReader } from './gguf/reader.ts';

/**
 * A tokenizer id says whether two engines turn text into the same token ids: equal ids → a transcript's ids are
 * reused as they are; different ids → the transcript is re-tokenized from its text. It hashes everything that
 * decides tokenization (algorithm, vocabulary, token types and scores, merges, BOS and space-prefix behaviour),
 * so two GGUF files with the same tokenizer (e.g. f32 and f16 of one model) share an id whatever their weights.
 */
export interface Vocabulary {
  /** Tokenizer algorithm, e.g. GGUF's tokenizer.ggml.model ('llama' = SPM, 'gpt2' = BPE). */
  readonly model: string;
  /** Pre-tokenizer name (GGUF tokenizer.ggml.pre), when the format has one. */
  readonly pre?: string;
  readonly tokens: readonly string[];
  readonly types?: readonly number[];
  readonly scores?: readonly number[];
  readonly merges?: readonly string[];
  readonly addBos?: boolean;
  readonly addSpacePrefix?: boolean;
}

const VERSION = 'ferry-tokenizer-id-v1';

/** `tok1-` + hex SHA-256 over a canonical, length-framed encoding of the vocabulary. */
export async function tokenizerIdOf(vocabulary: Vocabulary): Promise<string> {
  const out = new Frames();
  out.string(VERSION);
  out.string(vocabulary.model);
  out.string(vocabulary.pre ?? '');
  out.strings(vocabulary.tokens);
  out.numbers(vocabulary.types ?? [], 'int32');
  // Scores are compared as float32, the precision GGUF stores them in.
  out.numbers(vocabulary.scores ?? [], 'float32');
  out.strings(vocabulary.merges ?? []);
  out.string(flag(vocabulary.addBos));
  out.string(flag(vocabulary.addSpacePrefix));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', out.bytes()));
  return `tok1-${Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** The vocabulary a GGUF file's header describes (its tokenizer.ggml.* keys). */
export async function ggufVocabulary(reader: ByteReader): Promise<Vocabulary> {
  const header = await readGgufHeader(reader);
  const get = (key: string): GgufEntry | undefined => header.metadata.get(key);
  const string = (key: string): string | undefined => {
    const entry = get(key);
    return entry && entry.value instanceof Uint8Array ? utf8(entry.value, key) : undefined;
  };
  const list = (key: string): readonly unknown[] | undefined => {
    const value = get(key)?.value;
    return Array.isArray(value) ? value : undefined;
  };
  const bool = (key: string): boolean | undefined => {
    const entry = get(key);
    return entry?.type === GgufValueType.BOOL && typeof entry.value === 'boolean' ? entry.value : undefined;
  };
  const model = string('tokenizer.ggml.model');
  const tokens = list('tokenizer.ggml.tokens');
  if (model === undefined || tokens === undefined) {
    throw new FerryError('gguf/missing-key', 'The model file has no tokenizer (tokenizer.ggml.model and tokenizer.ggml.tokens). Choose a complete model file.');
  }
  const texts = (key: string, values: readonly unknown[]) => values.map((v) => (v instanceof Uint8Array ? utf8(v, key) : String(v)));
  const numbers = (values: readonly unknown[] | undefined) => values?.map((v) => Number(v));
  const pre = string('tokenizer.ggml.pre');
  const types = numbers(list('tokenizer.ggml.token_type'));
  const scores = numbers(list('tokenizer.ggml.scores'));
  const merges = list('tokenizer.ggml.merges');
  const addBos = bool('tokenizer.ggml.add_bos_token');
  const addSpacePrefix = bool('tokenizer.ggml.add_space_prefix');
  return {
    model,
    tokens: texts('tokenizer.ggml.tokens', tokens),
    ...(pre === undefined ? {} : { pre }),
    ...(types ? { types } : {}),
    ...(scores ? { scores } : {}),
    ...(merges ? { merges: texts('tokenizer.ggml.merges', merges) } : {}),
    ...(addBos === undefined ? {} : { addBos }),
    ...(addSpacePrefix === undefined ? {} : { addSpacePrefix }),
  };
}

/** The tokenizer id of a GGUF file: the same in Node (file reader) and in a browser (Blob reader). */
export async function tokenizerIdOfGguf(reader: ByteReader): Promise<string> {
  return tokenizerIdOf(await ggufVocabulary(reader));
}

function flag(value: boolean | undefined): string {
  return value === undefined ? '-' : value ? '1' : '0';
}

/** Length-prefixed frames, so no two different vocabularies encode to the same bytes. */
class Frames {
  readonly #parts: Uint8Array[] = [];
  readonly #encoder = new TextEncoder();

  string(text: string): void {
    this.#frame(this.#encoder.encode(text));
  }

  strings(texts: readonly string[]): void {
    this.#count(texts.length);
    for (const text of texts) this.string(text);
  }

  numbers(values: readonly number[], as: 'int32' | 'float32'): void {
    const view = new DataView(new ArrayBuffer(values.length * 4));
    values.forEach((v, i) => (as === 'int32' ? view.setInt32(i * 4, v, true) : view.setFloat32(i * 4, v, true)));
    this.#count(values.length);
    this.#parts.push(new Uint8Array(view.buffer));
  }

  bytes(): Uint8Array<ArrayBuffer> {
    const total = new Uint8Array(this.#parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of this.#parts) {
      total.set(part, at);
      at += part.length;
    }
    return total;
  }

  #frame(bytes: Uint8Array): void {
    this.#count(bytes.length);
    this.#parts.push(bytes);
  }

  #count(n: number): void {
    const framing = new DataView(new ArrayBuffer(4));
    framing.setUint32(0, n, true);
    this.#parts.push(new Uint8Array(framing.buffer));
  }
}
