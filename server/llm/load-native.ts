import type { Llama, LlamaModel, getLlama as GetLlama } from 'node-llama-cpp';
import { FerryError } from '../../src/core/errors.ts';
import { checkGguf, type GgufModelInfo } from '../../src/core/llm/gguf/index.ts';
import { openFileReader } from './file-reader.ts';

export interface NativeLoadOptions {
  /**
   * 'auto' uses CUDA, Vulkan or Metal where a real GPU is present (software Vulkan devices such as llvmpipe are
   * refused: they are slower than the CPU path) and the CPU otherwise; false forces the CPU (the default here, so
   * tests and the 2-core build machines are deterministic; the engine's own default is 'auto').
   */
  readonly gpu?: 'auto' | false;
  /** CPU threads for evaluation. On 2-core machines more than 1 makes generation collapse (STACK.md). */
  readonly threads?: number;
}

export interface NativeModel {
  readonly info: GgufModelInfo;
  readonly llama: Llama;
  readonly model: LlamaModel;
  /** Where it runs, in words: "CPU, 1 thread" or "cuda: NVIDIA H100 80GB HBM3". */
  readonly device: string;
}

/** Vulkan drivers that emulate a GPU on the CPU. */
const SOFTWARE_DEVICES = /llvmpipe|lavapipe|swiftshader|softpipe/i;

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
    llamaPromise = gpu === false ? getLlama().then((get) => get({ gpu: false, build: 'never', maxThreads: threads })) : autoLlama(threads);
    llamas.set(key, llamaPromise);
    llamaPromise.catch(() => llamas.delete(key));
  }
  try {
    const llama = await llamaPromise;
    const model = await llama.loadModel({ modelPath: path });
    const device = llama.gpu === false ? `CPU, ${threads} thread${threads === 1 ? '' : 's'}` : `${llama.gpu}: ${(await llama.getGpuDeviceNames()).join(', ')}`;
    return { info, llama, model, device };
  } catch (cause) {
    throw new FerryError('llm/load-failed', `node-llama-cpp could not load ${path}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
      details: { path },
    });
  }
}

/** The best backend present: a real GPU (CUDA, Vulkan, Metal) when there is one, else the CPU. */
async function autoLlama(threads: number): Promise<Llama> {
  const get = await getLlama();
  const llama = await get({ gpu: 'auto', build: 'never', maxThreads: threads }).catch(() => undefined);
  if (llama && llama.gpu !== false) {
    const names = await llama.getGpuDeviceNames();
    if (names.length > 0 && !names.every((n) => SOFTWARE_DEVICES.test(n))) return llama;
  }
  if (llama) await llama.dispose();
  return get({ gpu: false, build: 'never', maxThreads: threads });
}

/** node-llama-cpp takes a second to import: only a relay that loads a model pays for it (checking a file does not). */
const getLlama = async (): Promise<typeof GetLlama> => (await import('node-llama-cpp')).getLlama;
