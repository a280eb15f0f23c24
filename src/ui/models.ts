/**
 * What the Models screen shows: the engine this device would use and why (device probe), the web-llm models its
 * GPU can run (when it has WebGPU: the catalog loads only then), the models the relay serves (its
 * OpenAI-compatible `/v1/models`) and which of them it hands out as GGUF files, the GGUF files cached here and the
 * storage they use.
 */
import * as v from 'valibot';
import type { Settings } from '../browser/settings.ts';
import { listCachedModels, type CachedModel } from '../browser/llm/model-cache.ts';
import { chooseEngine, offloadVerdict, probeDevice, sessionEngine, type GpuVerdict, type SessionEngine } from '../browser/llm/device-probe.ts';
import { prebuiltCatalog } from '../browser/llm/webllm-catalog.ts';
import { listRelayModels } from '../browser/llm/model-source.ts';
import type { HostedModel } from '../core/protocol/index.ts';
import { FerryError, isFerryError } from '../core/errors.ts';
import { describeError, type UiError } from './errors.ts';

export interface RelayModel {
  /** The engine's model id (a GGUF file's SHA-256: HostedModel.id), whatever name /v1 lists it under. */
  id: string;
  /** How the relay names it (a catalog name, `demo`, a file name, or the id itself). */
  name: string;
  engine: string | null;
  contextSize: number | null;
}

export interface ModelsView {
  /** What sessions run on here (the chooser's view with the person's settings applied), and why. */
  choice: { engine: SessionEngine; reason: string; wllamaThreads: number };
  /** Whether this device's GPU runs GGUF models (llama.cpp's WebGPU backend); null without WebGPU. */
  ggufOnGpu: GpuVerdict | null;
  /** This device's only WebGPU adapter is a software fallback (slower than the CPU engine). */
  softwareGpu: boolean;
  /** web-llm models this device's GPU can run (ids and their GPU memory need). */
  webLlm: { id: string; vramMb: number | null }[];
  relay: string;
  relayModels: RelayModel[];
  relayError: UiError | null;
  /** The relay's GGUF files this device can download and run (by model id). */
  hosted: Map<string, HostedModel>;
  cached: CachedModel[];
  storage: { usage: number; quota: number } | null;
}

const ModelListSchema = v.object({
  data: v.array(v.object({ id: v.pipe(v.string(), v.maxLength(512)), ferry: v.optional(v.object({ model: v.optional(v.pipe(v.string(), v.maxLength(512))), engine: v.optional(v.string()), context_size: v.optional(v.number()) })) })),
});

/** A relay that has just started answers /v1 once its own model has loaded: allow for that. */
const MODEL_LIST_TIMEOUT_MS = 60_000;

async function relayModels(relay: string): Promise<RelayModel[]> {
  const res = await fetch(`${relay}/v1/models`, { cache: 'no-store', signal: AbortSignal.timeout(MODEL_LIST_TIMEOUT_MS) });
  if (!res.ok) throw new FerryError('relay/no-models', `The relay answered ${res.status} for /v1/models: it serves no model. Start it with --model to host one.`);
  const parsed = v.safeParse(ModelListSchema, await res.json());
  if (!parsed.success) throw new FerryError('relay/bad-response', "The relay's model list is malformed; update the relay.");
  return parsed.output.data.map((m) => ({ id: m.ferry?.model ?? m.id, name: m.id, engine: m.ferry?.engine ?? null, contextSize: m.ferry?.context_size ?? null }));
}

export async function loadModels(settings: Settings): Promise<ModelsView> {
  const relay = (settings.relayUrl || globalThis.location.origin).replace(/\/+$/, '');
  const probe = await probeDevice();
  // The web-llm library (and its catalog) is large: load it only where WebGPU could use it.
  const catalog = probe.webgpu.available ? await prebuiltCatalog().catch(() => undefined) : undefined;
  // A GPU model chosen on this screen is the person's override of the chooser's preference.
  const choice = chooseEngine(probe, { ...(catalog ? { catalog } : {}), ...(settings.gpuModel ? { override: 'web-llm' as const } : {}) });
  const ggufOnGpu = probe.webgpu.available ? offloadVerdict(probe) : null;
  let models: RelayModel[] = [];
  let relayError: UiError | null = null;
  try {
    models = await relayModels(relay);
  } catch (err) {
    relayError = describeError(isFerryError(err) ? err : new FerryError('relay/unreachable', `The relay at ${relay} could not be reached (${err instanceof Error ? err.message : String(err)}). Check the connection, or the relay URL in Settings.`));
  }
  // A relay without model files (an older one) still lists its models; they just cannot be downloaded.
  const hosted = relayError ? [] : await listRelayModels(relay).catch(() => []);
  const [cached, estimate] = await Promise.all([listCachedModels().catch(() => []), navigator.storage?.estimate?.().catch(() => undefined)]);
  return {
    choice: { ...sessionEngine(choice, settings, ggufOnGpu), wllamaThreads: choice.wllamaThreads },
    ggufOnGpu,
    softwareGpu: probe.webgpu.available && probe.webgpu.isFallbackAdapter,
    webLlm: choice.webLlmModels.map((m) => ({ id: m.model_id, vramMb: m.vram_required_MB ?? null })),
    relay,
    relayModels: models,
    relayError,
    hosted: new Map(hosted.map((m) => [m.id, m])),
    cached,
    storage: estimate?.usage !== undefined && estimate.quota !== undefined ? { usage: estimate.usage, quota: estimate.quota } : null,
  };
}
