/**
 * Which engine this device's sessions run on, for the chosen model and Settings: llama.cpp on the CPU with the
 * Settings' context size (at most the model's own: memory on phones); in front of it on the GPU, web-llm when a GPU
 * model is chosen and this GPU can run it, else the same GGUF through llama.cpp's WebGPU backend where the GPU has
 * shader-f16 (unless Settings say not to). The spec is made once per model and settings (opening the model file
 * may download it).
 */
import { blobReader, checkGguf } from '../core/llm/gguf/index.ts';
import type { BrowserEngineSpec, WllamaSpec } from './llm/open-engine.ts';
import { gpuOffloads, gpuRuns } from './llm/device-probe.ts';
import type { DownloadProgress } from './llm/model-download.ts';
import { openModel } from './llm/model-source.ts';
import type { ModelChoice, SessionSampling } from './settings.ts';
import type { TemplateId } from './templates.ts';

/** This device's engine settings: reply length and context size, and the web-llm model for its GPU ('' for none). */
export interface EngineLimits {
  replyTokens: number;
  contextSize: number;
  gpuModel: string;
  ggufOnGpu: boolean;
  /** How each agent's new sessions sample (Settings): see samplingByTemplate. */
  sampling: Record<TemplateId, SessionSampling>;
}

export interface EngineChoiceOptions {
  /** Model loading (a download when the cached copy is gone). */
  onModelProgress?(progress: DownloadProgress): void;
  /** The chosen GPU model cannot run here, and why. */
  onUnused?(message: string): void;
}

export class EngineChoice {
  #made: { key: string; spec: Promise<BrowserEngineSpec> } | undefined;

  constructor(private readonly opts: EngineChoiceOptions = {}) {}

  spec(model: ModelChoice, { contextSize, gpuModel, ggufOnGpu }: EngineLimits): Promise<BrowserEngineSpec> {
    const key = JSON.stringify([model, contextSize, gpuModel, ggufOnGpu]);
    if (this.#made?.key !== key) {
      const spec = openModel(model, this.opts.onModelProgress).then(async (file): Promise<BrowserEngineSpec> => {
        // A model's id is its SHA-256, as the cloud worker reports it (hashed when picked; older choices by the engine).
        const cpu: WllamaSpec =
          model.source === 'relay'
            ? { kind: 'wllama', model: file, modelId: model.id, contextSize: Math.min(model.contextSize, contextSize) }
            : { kind: 'wllama', model: file, ...(model.id ? { modelId: model.id } : {}), contextSize: Math.min((await checkGguf(blobReader(file))).contextLength, contextSize) };
        if (gpuModel) {
          const gpu = await gpuRuns(gpuModel);
          if (gpu.ok) return { kind: 'web-llm', modelId: gpuModel, contextSize: cpu.contextSize ?? contextSize, fallback: cpu };
          this.opts.onUnused?.(`${gpu.reason} Sessions run on their GGUF model with llama.cpp on the CPU instead.`);
        }
        // No web-llm model for this GPU: the session's GGUF goes on it through llama.cpp where it can.
        return ggufOnGpu && (await gpuOffloads()).ok ? { kind: 'wllama-webgpu', fallback: cpu } : cpu;
      });
      this.#made = { key, spec };
      spec.catch(() => {
        if (this.#made?.spec === spec) this.#made = undefined;
      });
    }
    return this.#made.spec;
  }
}
