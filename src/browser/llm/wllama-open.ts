/**
 * Opening a GGUF file in wllama: the file is checked before llama.cpp sees it (a malformed or truncated one is a typed
 * error, not an abort inside llama.cpp), loaded with the context and threads asked for, and described as EngineInfo.
 */
import { LoggerWithoutDebug, Wllama } from 'wllama-v2/esm/index.js';
import singleThreadWasm from 'wllama-v2/esm/single-thread/wllama.wasm?url';
import multiThreadWasm from 'wllama-v2/esm/multi-thread/wllama.wasm?url';
import { FerryError } from '../../core/errors.ts';
import { blobReader, checkGguf, type GgufModelInfo } from '../../core/llm/gguf/index.ts';
import { ggufVocabulary, tokenizerIdOf, type EngineInfo } from '../../core/llm/index.ts';
import { isOutOfMemory, WllamaEngine } from './wllama-engine.ts';

export interface WllamaEngineOptions {
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

export async function createWllamaEngine(options: WllamaEngineOptions): Promise<WllamaEngine> {
  const { model } = options;
  const reader = blobReader(model);
  const gguf = await checkModelFile(model);
  const vocabulary = await ggufVocabulary(reader);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new FerryError('llm/bad-options', `threads must be an integer from 1 to 64, got ${threads}.`);
  const multiThread = threads > 1 && globalThis.crossOriginIsolated === true;
  const contextSize = options.contextSize ?? Math.min(gguf.contextLength, 4096);
  if (!Number.isInteger(contextSize) || contextSize < 16 || contextSize > 1 << 20) {
    throw new FerryError('llm/bad-options', `contextSize must be an integer from 16 to 1048576, got ${contextSize}.`);
  }
  const modelId = options.modelId ?? (await fileId(model));

  // wllama 2.x resolves its wasm URLs against document.baseURI, which a worker lacks: give it just that.
  if (typeof document === 'undefined') Object.assign(globalThis, { document: { baseURI: globalThis.location.href } });
  const wllama = new Wllama(
    { 'single-thread/wllama.wasm': singleThreadWasm, ...(multiThread ? { 'multi-thread/wllama.wasm': multiThreadWasm } : {}) },
    { suppressNativeLog: true, logger: LoggerWithoutDebug },
  );
  try {
    await wllama.loadModel([model], { n_ctx: contextSize, n_threads: multiThread ? threads : 1 });
  } catch (cause) {
    await wllama.exit().catch(() => undefined);
    throw loadError(cause, gguf);
  }
  const loaded = wllama.getLoadedContextInfo();
  const running = wllama.isMultithread() ? wllama.getNumThreads() : 1;
  const bos = loaded.token_bos >= 0 ? vocabulary.tokens[loaded.token_bos] : undefined;
  const eos = loaded.token_eos >= 0 ? vocabulary.tokens[loaded.token_eos] : undefined;
  const info: EngineInfo = {
    id: 'wllama',
    kind: 'wasm-cpu',
    model: modelId,
    tokenizerId: await tokenizerIdOf(vocabulary),
    contextSize: loaded.n_ctx,
    kvState: false,
    grammar: true,
    ...(gguf.chatTemplate === undefined ? {} : { chatTemplate: gguf.chatTemplate }),
    ...(bos === undefined ? {} : { bosToken: bos }),
    ...(eos === undefined ? {} : { eosToken: eos }),
    addBos: loaded.add_bos_token,
    device: `CPU (WebAssembly), ${running === 1 ? '1 thread' : `${running} threads`}`,
  };
  return new WllamaEngine(wllama, info, loaded.n_vocab);
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
  return new FerryError('llm/load-failed', `wllama could not load the model: ${message}. The file passed Ferry's checks, so it may use an architecture or tensor type this llama.cpp build does not support.`, { cause });
}
