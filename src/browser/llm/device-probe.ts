/**
 * What this device offers an LLM engine, and which engine to use. The probe reads the WebGPU adapter (features,
 * buffer limits, whether it is a software fallback), memory, cores and cross-origin isolation (wllama threads);
 * the chooser turns that into 'web-llm' or 'wllama' with the reason in words. The user's choice wins when the
 * device can honour it; otherwise the chooser says why it could not.
 */
import { compatibleModels, prebuiltCatalog, screenCatalog, type WebLlmModelRecord } from './webllm-catalog.ts';

export interface WebGpuProbe {
  readonly available: true;
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
  /** A software adapter (e.g. SwiftShader): it works, but slower than llama.cpp on the CPU. */
  readonly isFallbackAdapter: boolean;
  readonly features: readonly string[];
  readonly shaderF16: boolean;
  readonly limits: {
    readonly maxBufferSize: number;
    readonly maxStorageBufferBindingSize: number;
    readonly maxComputeWorkgroupStorageSize: number;
    readonly maxComputeInvocationsPerWorkgroup: number;
  };
}

export interface DeviceProbe {
  readonly webgpu: WebGpuProbe | { readonly available: false; readonly reason: string };
  /** navigator.deviceMemory (GiB, rounded and capped at 8 by browsers); undefined where not exposed. */
  readonly deviceMemoryGiB: number | undefined;
  readonly hardwareConcurrency: number;
  /** Cross-origin isolated pages can share memory between threads: wllama can run multi-threaded. */
  readonly crossOriginIsolated: boolean;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<AdapterLike | null>;
}
interface AdapterLike {
  readonly features: ReadonlySet<string>;
  readonly limits: Record<string, number>;
  readonly info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  readonly isFallbackAdapter?: boolean;
}

export async function probeDevice(scope: { navigator: Navigator; crossOriginIsolated?: boolean } = globalThis as never): Promise<DeviceProbe> {
  const nav = scope.navigator as Navigator & { gpu?: GpuLike; deviceMemory?: number };
  return {
    webgpu: await probeWebGpu(nav.gpu),
    deviceMemoryGiB: typeof nav.deviceMemory === 'number' ? nav.deviceMemory : undefined,
    hardwareConcurrency: nav.hardwareConcurrency || 1,
    crossOriginIsolated: scope.crossOriginIsolated === true,
  };
}

async function probeWebGpu(gpu: GpuLike | undefined): Promise<DeviceProbe['webgpu']> {
  if (!gpu) return { available: false, reason: globalThis.isSecureContext === false ? 'this page is not a secure context (plain HTTP), and browsers give WebGPU to secure contexts only' : 'this browser exposes no WebGPU (navigator.gpu is missing)' };
  let adapter: AdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (cause) {
    return { available: false, reason: `requesting a WebGPU adapter failed: ${(cause as Error).message ?? String(cause)}` };
  }
  if (!adapter) return { available: false, reason: 'the browser has WebGPU but offered no adapter (no usable GPU, or it is blocklisted)' };
  const features = [...adapter.features].sort();
  const limit = (name: string) => Number(adapter.limits[name] ?? 0);
  return {
    available: true,
    vendor: adapter.info?.vendor ?? '',
    architecture: adapter.info?.architecture ?? '',
    description: adapter.info?.description ?? '',
    isFallbackAdapter: adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter ?? false,
    features,
    shaderF16: features.includes('shader-f16'),
    limits: {
      maxBufferSize: limit('maxBufferSize'),
      maxStorageBufferBindingSize: limit('maxStorageBufferBindingSize'),
      maxComputeWorkgroupStorageSize: limit('maxComputeWorkgroupStorageSize'),
      maxComputeInvocationsPerWorkgroup: limit('maxComputeInvocationsPerWorkgroup'),
    },
  };
}

export type EngineChoice = 'web-llm' | 'wllama';

export interface Choice {
  readonly engine: EngineChoice;
  /** Why, for the person: shown next to the model picker. */
  readonly reason: string;
  /** web-llm models this device can run (empty when the choice is wllama for lack of WebGPU). */
  readonly webLlmModels: readonly WebLlmModelRecord[];
  /** wllama threads worth using here. */
  readonly wllamaThreads: number;
}

export function chooseEngine(probe: DeviceProbe, options: { override?: EngineChoice; catalog?: readonly WebLlmModelRecord[] } = {}): Choice {
  const wllamaThreads = probe.crossOriginIsolated ? Math.max(1, Math.min(8, probe.hardwareConcurrency - 1)) : 1;
  const cpu = `llama.cpp on the CPU${wllamaThreads > 1 ? ` with ${wllamaThreads} threads` : ', one thread'}`;
  const gpu = probe.webgpu;
  if (!gpu.available) {
    const why = `This device has no WebGPU: ${gpu.reason}. Using ${cpu}.`;
    return { engine: 'wllama', reason: options.override === 'web-llm' ? `You chose web-llm, but it needs WebGPU. ${why}` : why, webLlmModels: [], wllamaThreads };
  }
  const models = compatibleModels(options.catalog, probe);
  const adapterName = [gpu.vendor, gpu.architecture, gpu.description].filter(Boolean).join(' ') || 'unnamed adapter';
  if (options.override === 'wllama') {
    return { engine: 'wllama', reason: `You chose llama.cpp on the CPU: using ${cpu} although WebGPU (${adapterName}) is available.`, webLlmModels: models, wllamaThreads };
  }
  if (models.length === 0) {
    const lacks = gpu.shaderF16 ? 'its buffer limits or memory are too small for every web-llm model' : 'it lacks shader-f16 and its limits or memory fit no f32 web-llm model';
    const why = `The WebGPU adapter (${adapterName}) can run no web-llm model: ${lacks}. Using ${cpu}.`;
    return { engine: 'wllama', reason: options.override === 'web-llm' ? `You chose web-llm, but ${why}` : why, webLlmModels: models, wllamaThreads };
  }
  if (gpu.isFallbackAdapter && options.override !== 'web-llm') {
    return {
      engine: 'wllama',
      reason: `The only WebGPU adapter (${adapterName}) is a software fallback, slower than the CPU engine. Using ${cpu}; choose web-llm to use it anyway.`,
      webLlmModels: models,
      wllamaThreads,
    };
  }
  return {
    engine: 'web-llm',
    reason: `${options.override === 'web-llm' ? 'You chose web-llm: ' : ''}WebGPU adapter ${adapterName}${gpu.shaderF16 ? ' with shader-f16' : ' (no shader-f16: f32 models only)'} runs ${models.length} web-llm model${models.length === 1 ? '' : 's'} on the GPU.`,
    webLlmModels: models,
    wllamaThreads,
  };
}

export type GpuVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Whether this device's GPU can run web-llm model `modelId`. The user chose it, so a software adapter counts
 * (the user overrides the chooser's preference for the CPU); a model the adapter cannot run, or no WebGPU, does not.
 */
export function gpuVerdict(modelId: string, probe: DeviceProbe, catalog: readonly WebLlmModelRecord[]): GpuVerdict {
  const choice = chooseEngine(probe, { override: 'web-llm', catalog });
  if (choice.engine !== 'web-llm') return { ok: false, reason: choice.reason.replace(/\s*Using llama\.cpp on the CPU[^.]*\.$/, '') };
  if (!catalog.some((m) => m.model_id === modelId)) return { ok: false, reason: `The GPU model ${modelId} is not in web-llm's catalog (any more); choose another on the Models screen.` };
  if (!choice.webLlmModels.some((m) => m.model_id === modelId)) {
    const why = screenCatalog(catalog, probe).rejected.find((r) => r.model_id === modelId)?.why ?? 'it does not fit';
    return { ok: false, reason: `This device's GPU cannot run ${modelId}: ${why}.` };
  }
  return { ok: true };
}

/**
 * Whether llama.cpp's WebGPU backend (wllama 3) can run a GGUF model on this device's GPU: it needs shader-f16,
 * and a software adapter would be slower than the CPU engine. The engine itself still refuses a GPU that takes
 * no layer of the model, so the CPU engine runs then.
 */
export function offloadVerdict(probe: DeviceProbe): GpuVerdict {
  const gpu = probe.webgpu;
  if (!gpu.available) return { ok: false, reason: `This device has no WebGPU: ${gpu.reason}.` };
  const name = [gpu.vendor, gpu.architecture, gpu.description].filter(Boolean).join(' ') || 'unnamed adapter';
  if (gpu.isFallbackAdapter) return { ok: false, reason: `The only WebGPU adapter (${name}) is a software fallback, slower than the CPU engine.` };
  if (!gpu.shaderF16) return { ok: false, reason: `The WebGPU adapter (${name}) lacks shader-f16, which llama.cpp's WebGPU backend needs.` };
  return { ok: true };
}

export type SessionEngine = EngineChoice | 'wllama-webgpu';

/**
 * What sessions here run on, and why, for people: the chooser says what the device could do; the person's settings
 * (a web-llm model chosen, GGUF models on the GPU) and `offload` (offloadVerdict; null without WebGPU) say what
 * happens — the agent host's own order: the chosen web-llm model, else the GGUF on the GPU, else the CPU.
 */
export function sessionEngine(choice: Pick<Choice, 'engine' | 'reason'>, settings: { readonly gpuModel: string; readonly ggufOnGpu: boolean }, offload: GpuVerdict | null): { engine: SessionEngine; reason: string } {
  if (choice.engine === 'web-llm' && settings.gpuModel) return { engine: choice.engine, reason: choice.reason };
  if (settings.ggufOnGpu && offload?.ok) {
    const gguf = "sessions run their GGUF model on it through llama.cpp's WebGPU backend, and on the CPU if the GPU fails.";
    return {
      engine: 'wllama-webgpu',
      reason: settings.gpuModel ? `${choice.reason.replace(/\s*Using llama\.cpp on the CPU[^.]*\.$/, '')} The GPU has shader-f16: ${gguf}` : `The GPU has shader-f16: ${gguf} A web-llm model chosen below runs instead.`,
    };
  }
  if (choice.engine === 'web-llm') return { engine: 'wllama', reason: `No web-llm model is chosen, so sessions run their GGUF model with llama.cpp on the CPU. ${choice.reason} Choose one below to use it.` };
  return { engine: choice.engine, reason: choice.reason };
}

/** offloadVerdict for this device. */
export async function gpuOffloads(): Promise<GpuVerdict> {
  return offloadVerdict(await probeDevice());
}

/** gpuVerdict for this device, with web-llm's prebuilt catalog (the library loads only here, when a GPU model is chosen). */
export async function gpuRuns(modelId: string): Promise<GpuVerdict> {
  const probe = await probeDevice();
  if (!probe.webgpu.available) return gpuVerdict(modelId, probe, []);
  return gpuVerdict(modelId, probe, await prebuiltCatalog());
}
