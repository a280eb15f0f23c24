import { getLlama, type Llama, type LlamaModel } from 'node-llama-cpp';
import { FerryError } from '../../src/core/errors.ts';
import { checkGguf, type GgufModelInfo } from '../../src/core/llm/gguf/index.ts';
import { openFileReader } from './file-reader.ts';

export interface NativeLoadOptions {
  /** 'auto' lets node-llama-cpp pick CUDA/Vulkan/Metal; false forces the CPU (the default: see STACK.md). */
  readonly gpu?: 'auto' | false;
  /** CPU threads for evaluation. On 2-core machines more than 1 makes generation collapse (STACK.md). */
  readonly threads?: number;
}

export interface NativeModel {
  readonly info: GgufModelInfo;
  readonly llama: Llama;
  readonly model: LlamaModel;
}

/** Validates a GGUF file's header without reading its tensors; throws a `gguf/*` FerryError when it is unusable. */
export async function checkModelFile(path: string): Promise<GgufModelInfo> {
  const reader = await openFileReader(path).catch((cause: unknown) => {
    throw new FerryError('gguf/unreadable', `Cannot open the model file ${path}. Check the path and its permissions.`, { cause, details: { path } });
  });
  try {
    return await checkGguf(reader);
  } finally {
    await reader.close();
  }
}

const llamas = new Map<string, Promise<Llama>>();

/**
 * Loads a model with node-llama-cpp, but only after check.ts accepted its header: files that would abort the
 * process natively (e.g. no feed_forward_length) are refused with a typed error instead.
 */
export async function loadNativeModel(path: string, options: NativeLoadOptions = {}): Promise<NativeModel> {
  const gpu = options.gpu ?? false;
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new FerryError('llm/bad-option', `threads must be a positive integer, got ${threads}.`);
  }
  const info = await checkModelFile(path);
  // One Llama per configuration: its binding is costly to start and can serve many models.
  const key = `${gpu}:${threads}`;
  let llamaPromise = llamas.get(key);
  if (!llamaPromise) {
    llamaPromise = getLlama({ gpu, build: 'never', maxThreads: threads });
    llamas.set(key, llamaPromise);
    llamaPromise.catch(() => llamas.delete(key));
  }
  try {
    const llama = await llamaPromise;
    const model = await llama.loadModel({ modelPath: path });
    return { info, llama, model };
  } catch (cause) {
    throw new FerryError('llm/load-failed', `node-llama-cpp could not load ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
      details: { path },
    });
  }
}
