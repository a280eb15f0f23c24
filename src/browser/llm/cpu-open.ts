/**
 * Opening a GGUF file in the CPU engine: the file is checked before llama.cpp sees it (a malformed or truncated one is
 * a typed error, not an abort inside llama.cpp), loaded with the context asked for, and described as EngineInfo.
 */
import { FerryError } from '../../core/errors.ts';
import { blobReader, checkGguf, type GgufModelInfo } from '../../core/llm/gguf/index.ts';
import { ggufVocabulary, llamaCppKvFormat, tokenizerIdOf, type EngineInfo } from '../../core/llm/index.ts';
import { CpuEngine, isOutOfMemory } from './cpu-engine.ts';
import { LlamaWasm } from './llama-wasm.ts';

export interface CpuEngineOptions {
  /** The GGUF file; it is checked before llama.cpp sees it. */
  readonly model: Blob;
  /** EngineInfo.model; default: the file's SHA-256 (files over 1 GiB must give one: hashing reads them whole). */
  readonly modelId?: string;
  /** Default: the model's training context, at most 4096. */
  readonly contextSize?: number;
  /** Default 1. More than one needs cross-origin isolation (without it, one runs). */
  readonly threads?: number;
}

const HASH_LIMIT = 1 << 30;

/** The gate: a malformed or truncated file is refused with a typed error instead of aborting inside llama.cpp. */
export async function checkModelFile(model: Blob): Promise<GgufModelInfo> {
  const gguf = await checkGguf(blobReader(model));
  if (gguf.fileSize !== model.size) {
    throw new FerryError('gguf/truncated', `The model file is ${model.size} bytes but its header describes ${gguf.fileSize}. Download it again.`);
  }
  return gguf;
}

export async function createCpuEngine(options: CpuEngineOptions): Promise<CpuEngine> {
  const { model } = options;
  const reader = blobReader(model);
  const gguf = await checkModelFile(model);
  const vocabulary = await ggufVocabulary(reader);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new FerryError('llm/bad-options', `threads must be an integer from 1 to 64, got ${threads}.`);
  const contextSize = options.contextSize ?? Math.min(gguf.contextLength, 4096);
  if (!Number.isInteger(contextSize) || contextSize < 16 || contextSize > 1 << 20) {
    throw new FerryError('llm/bad-options', `contextSize must be an integer from 16 to 1048576, got ${contextSize}.`);
  }
  const modelId = options.modelId ?? (await fileId(model));
  // Threads share the module's memory, which needs cross-origin isolation; without it, one runs.
  const running = globalThis.crossOriginIsolated === true ? threads : 1;
  let llama: LlamaWasm;
  try {
    llama = await LlamaWasm.open(model, { contextSize, threads: running });
  } catch (cause) {
    throw loadError(cause, gguf);
  }
  const bos = llama.bos >= 0 ? vocabulary.tokens[llama.bos] : undefined;
  const eos = llama.eos >= 0 ? vocabulary.tokens[llama.eos] : undefined;
  const info: EngineInfo = {
    id: 'wllama',
    kind: 'wasm-cpu',
    model: modelId,
    tokenizerId: await tokenizerIdOf(vocabulary),
    contextSize: llama.contextSize,
    kvState: true,
    kvFormat: llamaCppKvFormat(llama.llamaCommit),
    grammar: true,
    ...(gguf.chatTemplate === undefined ? {} : { chatTemplate: gguf.chatTemplate }),
    ...(bos === undefined ? {} : { bosToken: bos }),
    ...(eos === undefined ? {} : { eosToken: eos }),
    addBos: llama.addBos,
    device: `CPU (WebAssembly), ${running === 1 ? '1 thread' : `${running} threads`}`,
  };
  return new CpuEngine(llama, info);
}

export async function fileId(model: Blob): Promise<string> {
  if (model.size > HASH_LIMIT) {
    throw new FerryError('llm/bad-options', `The model file is ${(model.size / 2 ** 30).toFixed(1)} GiB; give its modelId (e.g. the SHA-256 the download was checked against) instead of hashing it in memory.`);
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await model.arrayBuffer()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function loadError(cause: unknown, gguf: GgufModelInfo): FerryError {
  if (isOutOfMemory(cause)) {
    return new FerryError('llm/out-of-memory', `The model (${(gguf.fileSize / 2 ** 20).toFixed(0)} MiB) does not fit in this tab's WebAssembly memory. Choose a smaller or more quantized model.`, { cause });
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return new FerryError('llm/load-failed', `llama.cpp could not load the model: ${message}. The file passed Ferry's checks, so it may use an architecture or tensor type this llama.cpp build does not support.`, { cause });
}
