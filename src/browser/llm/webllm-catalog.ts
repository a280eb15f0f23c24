/**
 * web-llm's model catalog filtered by what this device's WebGPU adapter offers: a model needing shader-f16 is
 * dropped without it, one whose buffers exceed the adapter's limits is dropped, and so is one whose VRAM need
 * exceeds what the device reports. The catalog is passed in (web-llm's prebuiltAppConfig.model_list by default,
 * loaded lazily: the library is large).
 */
import type { DeviceProbe } from './device-probe.ts';

/** The fields of web-llm's ModelRecord that the filter reads. */
export interface WebLlmModelRecord {
  readonly model: string;
  readonly model_id: string;
  readonly model_lib: string;
  readonly vram_required_MB?: number;
  readonly low_resource_required?: boolean;
  readonly buffer_size_required_bytes?: number;
  readonly required_features?: readonly string[];
  readonly model_type?: number;
  readonly overrides?: { readonly context_window_size?: number };
}

export interface Rejection {
  readonly model_id: string;
  readonly why: string;
}

/** Why each model does or does not fit, for the model picker and for tests. */
export function screenCatalog(catalog: readonly WebLlmModelRecord[], probe: DeviceProbe): { fits: WebLlmModelRecord[]; rejected: Rejection[] } {
  const fits: WebLlmModelRecord[] = [];
  const rejected: Rejection[] = [];
  const gpu = probe.webgpu;
  for (const record of catalog) {
    const why = reasonItDoesNotFit(record, probe);
    if (why) rejected.push({ model_id: record.model_id, why });
    else if (gpu.available) fits.push(record);
  }
  return { fits, rejected };
}

export function compatibleModels(catalog: readonly WebLlmModelRecord[] | undefined, probe: DeviceProbe): WebLlmModelRecord[] {
  return catalog ? screenCatalog(catalog, probe).fits : [];
}

function reasonItDoesNotFit(record: WebLlmModelRecord, probe: DeviceProbe): string | undefined {
  const gpu = probe.webgpu;
  if (!gpu.available) return 'no WebGPU';
  // Only LLMs (model_type absent or 0): embedding and vision-language entries are not chat engines here.
  if (record.model_type !== undefined && record.model_type !== 0) return 'not a text LLM';
  const missing = requiredFeatures(record).filter((f) => !gpu.features.includes(f));
  if (missing.length > 0) return `needs ${missing.join(', ')}`;
  // web-llm's own check: the model's largest buffer must fit the adapter's storage binding.
  const buffer = record.buffer_size_required_bytes ?? 0;
  if (buffer > gpu.limits.maxStorageBufferBindingSize) return `needs ${buffer} B storage buffers, the adapter binds at most ${gpu.limits.maxStorageBufferBindingSize}`;
  if (buffer > gpu.limits.maxBufferSize) return `needs ${buffer} B buffers, the adapter allows ${gpu.limits.maxBufferSize}`;
  // Small-binding adapters (phones) can run only the models web-llm marks low-resource.
  if (gpu.limits.maxStorageBufferBindingSize < 1 << 30 && record.low_resource_required === false && buffer === 0) return 'needs an adapter with 1 GiB storage bindings';
  // deviceMemory is capped at 8 GiB by browsers, so it only rules out what clearly cannot fit.
  const vram = record.vram_required_MB;
  if (vram !== undefined && probe.deviceMemoryGiB !== undefined && probe.deviceMemoryGiB < 8 && vram > probe.deviceMemoryGiB * 1024 * 0.75) {
    return `needs ${Math.round(vram)} MB of GPU memory; the device reports ${probe.deviceMemoryGiB} GiB in all`;
  }
  return undefined;
}

/**
 * The WebGPU features a model needs. Many catalog entries leave `required_features` out although their MLC
 * quantization computes in f16 (q4f16_1, q0f16): their shaders need shader-f16 all the same.
 */
export function requiredFeatures(record: Pick<WebLlmModelRecord, 'model_id' | 'required_features'>): readonly string[] {
  if (record.required_features) return record.required_features;
  return /\bq\d+f16/i.test(record.model_id) ? ['shader-f16'] : [];
}

/** web-llm's prebuilt catalog (imports the library on first use). */
export async function prebuiltCatalog(): Promise<WebLlmModelRecord[]> {
  const { prebuiltAppConfig } = await import('@mlc-ai/web-llm');
  return prebuiltAppConfig.model_list as WebLlmModelRecord[];
}
