/**
 * The model catalog: real small instruct models, each one GGUF file on Hugging Face pinned by URL (a fixed
 * revision where one is known), size and SHA-256, so a download is checked byte for byte before anything loads it.
 * `ferry start --model <name>`, `ferry models` and the Models screen offer these by name. Every SHA-256 and size
 * here was taken from the file's Git LFS record as published (the same values in several independent projects that
 * verify these files); an entry whose hash could not be confirmed is left out rather than guessed.
 *
 * `webLlm` names the web-llm (MLC) builds of the same model, which share its tokenizer: a session can run on the GPU
 * with one of them and continue on the CPU or in the cloud with this GGUF file, token for token.
 *
 * The generated demo model (random weights) is not in this list: it is made on the spot, needs no download, and is
 * the offline default (DEMO_MODEL).
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';

const Sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'a SHA-256 is 64 lowercase hex digits'));

/** Where the file is: the built-in entries are Hugging Face resolve URLs; a deployment's own may point at a mirror. */
const ModelUrl = v.pipe(v.string(), v.maxLength(2048), v.regex(/^https?:\/\/[^\s/]+\/\S*$/, 'the url must be an http(s) URL of the GGUF file'));

/** Catalog names are what people type (`ferry start --model qwen2.5-0.5b`): short, lowercase, never a path. */
export const CATALOG_NAME = /^[a-z0-9][a-z0-9.-]{0,62}[a-z0-9]$/;

export const CatalogEntrySchema = v.strictObject({
  name: v.pipe(v.string(), v.regex(CATALOG_NAME, 'a catalog name is 2 to 64 lowercase letters, digits, dots and dashes')),
  /** For people: "Qwen2.5 0.5B Instruct". */
  label: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  /** The model family ("qwen2.5", "llama3.2"): models of one family share a chat format. */
  family: v.pipe(v.string(), v.regex(/^[a-z0-9][a-z0-9.-]*$/), v.maxLength(32)),
  /** The model's size as its makers label it ("0.5B", "3.8B"). */
  parameters: v.pipe(v.string(), v.regex(/^\d+(?:\.\d+)?[MB]$/, 'parameters are written like 0.5B or 360M')),
  /** The GGUF quantization ("Q4_K_M"). */
  quantization: v.pipe(v.string(), v.regex(/^(?:[QI]Q?\d[\w]*|F16|BF16|F32)$/, 'a GGUF quantization such as Q4_K_M, Q8_0 or F16')),
  /** The license the weights come under (SPDX id where there is one). */
  license: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
  /** The model's context window, in tokens (what it was trained for; engines may use less). */
  contextLength: v.pipe(v.number(), v.integer(), v.minValue(512), v.maxValue(1 << 24)),
  url: ModelUrl,
  sha256: Sha256,
  bytes: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(2 ** 45)),
  /** web-llm model ids (its prebuilt catalog) of the same model and tokenizer; empty where web-llm has none. */
  webLlm: v.pipe(v.array(v.pipe(v.string(), v.regex(/^[\w.-]+-MLC(?:-\w+)?$/), v.maxLength(128))), v.maxLength(8)),
});
export type CatalogEntry = v.InferOutput<typeof CatalogEntrySchema>;

/** A list of entries, names and files unique (the built-in one, or a deployment's own: `ferry start --catalog`). */
export const CatalogSchema = v.pipe(
  v.array(CatalogEntrySchema),
  v.maxLength(256),
  v.check((list) => new Set(list.map((e) => e.name)).size === list.length, 'catalog names must be unique'),
  v.check((list) => new Set(list.map((e) => e.sha256)).size === list.length, 'each file may appear once'),
);

const hf = (repo: string, revision: string, file: string): string => `https://huggingface.co/${repo}/resolve/${revision}/${file}`;

const ENTRIES: CatalogEntry[] = [
  {
    name: 'qwen2.5-0.5b',
    label: 'Qwen2.5 0.5B Instruct',
    family: 'qwen2.5',
    parameters: '0.5B',
    quantization: 'Q4_K_M',
    license: 'Apache-2.0',
    contextLength: 32768,
    url: hf('Qwen/Qwen2.5-0.5B-Instruct-GGUF', '9217f5db79a29953eb74d5343926648285ec7e67', 'qwen2.5-0.5b-instruct-q4_k_m.gguf'),
    sha256: '74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db',
    bytes: 491_400_032,
    webLlm: ['Qwen2.5-0.5B-Instruct-q4f16_1-MLC', 'Qwen2.5-0.5B-Instruct-q4f32_1-MLC'],
  },
  {
    name: 'qwen2.5-1.5b',
    label: 'Qwen2.5 1.5B Instruct',
    family: 'qwen2.5',
    parameters: '1.5B',
    quantization: 'Q4_K_M',
    license: 'Apache-2.0',
    contextLength: 32768,
    url: hf('Qwen/Qwen2.5-1.5B-Instruct-GGUF', '91cad51170dc346986eccefdc2dd33a9da36ead9', 'qwen2.5-1.5b-instruct-q4_k_m.gguf'),
    sha256: '6a1a2eb6d15622bf3c96857206351ba97e1af16c30d7a74ee38970e434e9407e',
    bytes: 1_117_320_736,
    webLlm: ['Qwen2.5-1.5B-Instruct-q4f16_1-MLC', 'Qwen2.5-1.5B-Instruct-q4f32_1-MLC'],
  },
  {
    name: 'qwen2.5-3b',
    label: 'Qwen2.5 3B Instruct',
    family: 'qwen2.5',
    parameters: '3B',
    quantization: 'Q4_K_M',
    // Unlike its smaller siblings, the 3B model is under Qwen's research license, not Apache-2.0.
    license: 'Qwen-Research',
    contextLength: 32768,
    url: hf('Qwen/Qwen2.5-3B-Instruct-GGUF', '7dabda4d13d513e3e842b20f0d435c732f172cbe', 'qwen2.5-3b-instruct-q4_k_m.gguf'),
    sha256: '626b4a6678b86442240e33df819e00132d3ba7dddfe1cdc4fbb18e0a9615c62d',
    bytes: 2_104_932_768,
    webLlm: ['Qwen2.5-3B-Instruct-q4f16_1-MLC', 'Qwen2.5-3B-Instruct-q4f32_1-MLC'],
  },
  {
    // Meta publishes no GGUF of its own; hugging-quants is Hugging Face's quantization of the official weights.
    name: 'llama3.2-1b',
    label: 'Llama 3.2 1B Instruct',
    family: 'llama3.2',
    parameters: '1B',
    quantization: 'Q4_K_M',
    license: 'Llama-3.2-Community',
    contextLength: 131072,
    url: hf('hugging-quants/Llama-3.2-1B-Instruct-Q4_K_M-GGUF', 'main', 'llama-3.2-1b-instruct-q4_k_m.gguf'),
    sha256: '1d0e9419ec4e12aef73ccf4ffd122703e94c48344a96bc7c5f0f2772c2152ce3',
    bytes: 807_690_656,
    webLlm: ['Llama-3.2-1B-Instruct-q4f16_1-MLC', 'Llama-3.2-1B-Instruct-q4f32_1-MLC'],
  },
  {
    name: 'llama3.2-3b',
    label: 'Llama 3.2 3B Instruct',
    family: 'llama3.2',
    parameters: '3B',
    quantization: 'Q4_K_M',
    license: 'Llama-3.2-Community',
    contextLength: 131072,
    url: hf('hugging-quants/Llama-3.2-3B-Instruct-Q4_K_M-GGUF', 'main', 'llama-3.2-3b-instruct-q4_k_m.gguf'),
    sha256: 'c55a83bfb6396799337853ca69918a0b9bbb2917621078c34570bc17d20fd7a1',
    bytes: 2_019_373_920,
    webLlm: ['Llama-3.2-3B-Instruct-q4f16_1-MLC', 'Llama-3.2-3B-Instruct-q4f32_1-MLC'],
  },
  {
    name: 'smollm2-1.7b',
    label: 'SmolLM2 1.7B Instruct',
    family: 'smollm2',
    parameters: '1.7B',
    quantization: 'Q4_K_M',
    license: 'Apache-2.0',
    contextLength: 8192,
    url: hf('HuggingFaceTB/SmolLM2-1.7B-Instruct-GGUF', '2d4a76a30b4af41ecd395c35725ac11688d4cfe4', 'smollm2-1.7b-instruct-q4_k_m.gguf'),
    sha256: 'decd2598bc2c8ed08c19adc3c8fdd461ee19ed5708679d1c54ef54a5a30d4f33',
    bytes: 1_055_609_536,
    webLlm: ['SmolLM2-1.7B-Instruct-q4f16_1-MLC', 'SmolLM2-1.7B-Instruct-q4f32_1-MLC'],
  },
  {
    // Google's own GGUF of Gemma 2 2B is unquantized (10 GB) and gated; bartowski's Q4_K_M is the usual small build.
    name: 'gemma2-2b',
    label: 'Gemma 2 2B Instruct',
    family: 'gemma2',
    parameters: '2B',
    quantization: 'Q4_K_M',
    license: 'Gemma',
    contextLength: 8192,
    url: hf('bartowski/gemma-2-2b-it-GGUF', '855f67caed130e1befc571b52bd181be2e858883', 'gemma-2-2b-it-Q4_K_M.gguf'),
    sha256: 'e0aee85060f168f0f2d8473d7ea41ce2f3230c1bc1374847505ea599288a7787',
    bytes: 1_708_582_752,
    webLlm: ['gemma-2-2b-it-q4f16_1-MLC', 'gemma-2-2b-it-q4f32_1-MLC'],
  },
  {
    // Microsoft published GGUF files for Phi-3 mini, not for 3.5; bartowski's build is the one in common use.
    name: 'phi3.5-mini',
    label: 'Phi-3.5 mini Instruct',
    family: 'phi3',
    parameters: '3.8B',
    quantization: 'Q4_K_M',
    license: 'MIT',
    contextLength: 131072,
    url: hf('bartowski/Phi-3.5-mini-instruct-GGUF', '6d70da17e749a471ccb62ade694486011a75cda3', 'Phi-3.5-mini-instruct-Q4_K_M.gguf'),
    sha256: 'e4165e3a71af97f1b4820da61079826d8752a2088e313af0c7d346796c38eff5',
    bytes: 2_393_232_672,
    webLlm: ['Phi-3.5-mini-instruct-q4f16_1-MLC', 'Phi-3.5-mini-instruct-q4f32_1-MLC'],
  },
];

/** The built-in catalog, checked against its schema when loaded. */
export const MODEL_CATALOG: readonly CatalogEntry[] = v.parse(CatalogSchema, ENTRIES);

/** The generated demo model: random weights, no download, the default when no model is given. */
export const DEMO_MODEL = {
  name: 'demo',
  label: 'Demo model (generated, random weights: its replies are gibberish)',
} as const;

/** A catalog's entries by name and by file. */
export class ModelCatalog {
  readonly #byName: ReadonlyMap<string, CatalogEntry>;
  readonly #bySha: ReadonlyMap<string, CatalogEntry>;

  constructor(readonly entries: readonly CatalogEntry[] = MODEL_CATALOG) {
    this.#byName = new Map(entries.map((e) => [e.name, e]));
    this.#bySha = new Map(entries.map((e) => [e.sha256, e]));
  }

  /** The built-in catalog plus a deployment's own entries (which win on a name they share). */
  static with(extra: readonly CatalogEntry[]): ModelCatalog {
    const names = new Set(extra.map((e) => e.name));
    return new ModelCatalog(v.parse(CatalogSchema, [...MODEL_CATALOG.filter((e) => !names.has(e.name)), ...extra]));
  }

  get(name: string): CatalogEntry | undefined {
    return this.#byName.get(name);
  }

  bySha256(sha256: string): CatalogEntry | undefined {
    return this.#bySha.get(sha256);
  }

  /** The entry called `name`, or a typed error that lists what there is (and the closest name). */
  require(name: string): CatalogEntry {
    const entry = this.get(name);
    if (entry) return entry;
    const near = this.entries.filter((e) => e.name.startsWith(name.split(/[.-]/)[0] ?? name)).map((e) => e.name);
    throw new FerryError('model/unknown-model', `"${name}" is not in the model catalog${near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : ''}. Catalog models: ${this.entries.map((e) => e.name).join(', ')}.`, {
      details: { name },
    });
  }
}

/** Parses a deployment's own catalog (JSON text), with a message that says which entry is wrong and how. */
export function parseCatalog(json: unknown, where: string): CatalogEntry[] {
  const parsed = v.safeParse(CatalogSchema, json);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const path = issue ? v.getDotPath(issue) : null;
  throw new FerryError('model/bad-catalog', `The model catalog ${where} is invalid${path ? ` at ${path}` : ''}: ${issue?.message ?? 'not a list of entries'}. Each entry needs name, label, family, parameters, quantization, license, contextLength, url, sha256, bytes and webLlm.`);
}
