/**
 * The one engine opener of the browser: the agent worker and the device-node worker both open their engine here
 * (tests and the bench too). A GPU engine (web-llm, or the session's GGUF on llama.cpp's WebGPU backend) always comes
 * with the same model on the CPU engine (llama.cpp in WebAssembly) to fall back to, on load or mid-reply; GPU libraries load only here, on
 * first use, so a CPU-only device never fetches them.
 */
import type { CpuShare } from '../../core/llm/cpu-share.ts';
import { withCpuShare } from '../../core/llm/cpu-share.ts';
import type { Engine } from '../../core/llm/engine.ts';
import { openWithFallback, type EngineSwitch } from '../../core/llm/fallback-engine.ts';
import { blobReader } from '../../core/llm/gguf/index.ts';
import { ggufVocabulary, tokenizerIdOf } from '../../core/llm/tokenizer-id.ts';
import type { WebLlmEngineOptions } from './webllm-engine.ts';
import { createCpuEngine, type CpuEngineOptions } from './cpu-open.ts';

/**
 * The session's GGUF on the CPU engine. `threads` defaults to what cpuThreads() gives this device. The kind keeps the
 * name of the library the CPU engine first ran on: specs and checkpoints carry it.
 */
export type WllamaSpec = { kind: 'wllama' } & CpuEngineOptions;
/** web-llm with the GGUF model to run on the CPU engine when the GPU cannot (the session's model stays the same one). */
export type WebLlmSpec = { kind: 'web-llm'; fallback: WllamaSpec } & Pick<WebLlmEngineOptions, 'modelId' | 'modelList' | 'contextSize'>;
/** The session's GGUF on the GPU through llama.cpp's WebGPU backend (wllama 3), on the CPU engine where it cannot run. */
export type WllamaGpuSpec = { kind: 'wllama-webgpu'; fallback: WllamaSpec };
export type BrowserEngineSpec = WllamaSpec | WebLlmSpec | WllamaGpuSpec;

export interface OpenEngineOptions {
  /** Caps the CPU engine (a GPU generation barely uses the CPU). */
  readonly share?: CpuShare;
  /** web-llm's loading progress, in [0, 1]. */
  onLoading?(progress: number, text: string): void;
  /** The GPU engine failed in a way the CPU takes over from; `change` says why, for people. */
  onSwitch?(change: EngineSwitch): void;
}

/**
 * The CPU engine's threads here: every core but one (the page's), at most 8, as far as the CPU share allows; one without
 * cross-origin isolation (threads need shared memory).
 */
export function cpuThreads(share: number, device: { cores: number; isolated: boolean } = { cores: navigator.hardwareConcurrency || 1, isolated: globalThis.crossOriginIsolated === true }): number {
  if (!device.isolated) return 1;
  return Math.max(1, Math.min(8, device.cores - 1, Math.floor(share * device.cores)));
}

export async function openBrowserEngine(spec: BrowserEngineSpec, options: OpenEngineOptions = {}): Promise<Engine> {
  const cpu = async (wllama: WllamaSpec): Promise<Engine> => {
    const engine = await createCpuEngine({ ...wllama, threads: wllama.threads ?? cpuThreads(options.share?.get() ?? 1) });
    return options.share ? withCpuShare(engine, options.share) : engine;
  };
  if (spec.kind === 'wllama') return cpu(spec);
  return openWithFallback(() => openGpu(spec, options), {
    open: () => cpu(spec.fallback),
    ...(options.onSwitch ? { onSwitch: options.onSwitch } : {}),
  });
}

async function openGpu(spec: WebLlmSpec | WllamaGpuSpec, options: OpenEngineOptions): Promise<Engine> {
  if (spec.kind === 'wllama-webgpu') {
    const { createWllamaGpuEngine } = await import('./wllama-gpu-engine.ts');
    const { model, modelId, contextSize } = spec.fallback;
    return createWllamaGpuEngine({ model, modelId, contextSize });
  }
  const { createWebLlmEngine } = await import('./webllm-engine.ts');
  const { fallback, ...gpu } = spec;
  // web-llm speaks the GGUF's ids where its vocabulary is the GGUF's: a hand-over then carries the reply's ids.
  const vocabulary = await ggufVocabulary(blobReader(fallback.model));
  return createWebLlmEngine({
    ...gpu,
    chatTemplate: true,
    vocabulary: { tokenizerId: await tokenizerIdOf(vocabulary), tokens: vocabulary.tokens },
    ...(options.onLoading ? { onProgress: (p) => options.onLoading!(p.progress, p.text) } : {}),
  });
}
