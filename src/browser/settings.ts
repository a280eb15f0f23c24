/**
 * This device's settings — placement (privacy, objective, budget, price of time), the engine's limits, the GPU
 * choices, the theme, the relay — and the model sessions run with here: their schemas, defaults and labels, and
 * where they are kept (the app database). Settings saved by an older build read with today's defaults filled in.
 */
import * as v from 'valibot';
import { FerryError } from '../core/errors.ts';
import { DEFAULT_PREFS, type PlacementPrefs } from '../core/placement/index.ts';
import { writing, type AppDatabase } from './app-db.ts';
import { TEMPLATE_IDS, templateName, type TemplateId } from './templates.ts';

export const PRIVACY = ['this-device', 'my-devices', 'any'] as const;
export const OBJECTIVES = ['fastest', 'cheapest', 'balanced'] as const;
export const THEMES = ['system', 'light', 'dark'] as const;

/** The ranges Settings accepts for the engine's limits (phones run out of memory well before the top). */
export const LIMITS = {
  replyTokens: { min: 16, max: 8192 },
  contextSize: { min: 512, max: 32768 },
  usdPerHour: { min: 0.01, max: 10_000 },
  temperature: { min: 0, max: 2 },
  topK: { min: 0, max: 1000 },
  repeatPenalty: { min: 1, max: 2 },
  seed: { min: 0, max: 2 ** 31 - 1 },
} as const;

const fraction = v.pipe(v.number(), v.finite('it must be a number'), v.minValue(0, 'it must be from 0 to 1'), v.maxValue(1, 'it must be from 0 to 1'));
const ranged = (r: { min: number; max: number }, integer = false) =>
  v.pipe(v.number(), integer ? v.integer('it must be a whole number') : v.finite('it must be a number'), v.minValue(r.min, `it must be at least ${r.min}`), v.maxValue(r.max, `it must be at most ${r.max}`));

const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

const SamplingSchema = v.object({
  temperature: ranged(LIMITS.temperature),
  topP: fraction,
  /** 0: no top-k cut. */
  topK: ranged(LIMITS.topK, true),
  minP: fraction,
  /** 1: no penalty. */
  repeatPenalty: ranged(LIMITS.repeatPenalty),
  seed: ranged(LIMITS.seed, true),
});
/** Settings' sampling fields, for all agents or for one. */
export type SamplingFields = v.InferOutput<typeof SamplingSchema>;

const SettingsSchema = v.object({
  relayUrl: v.pipe(v.string(), v.maxLength(2048)),
  /** Where every session of this device may run (placement's constraint), now and later. */
  privacy: v.picklist(PRIVACY),
  /** The person has answered where sessions may run (asked once, with the first session), or chose it in Settings. */
  privacyAsked: v.boolean(),
  objective: v.picklist(OBJECTIVES),
  /** The most one step may cost on a paid worker (one that charges for its tokens), US dollars; 0: no paid workers. */
  budgetUsd: v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(1_000_000)),
  /** For the balanced objective: what an hour of the user's waiting is worth, US dollars (placement's one trade-off knob). */
  usdPerHour: v.pipe(v.number(), v.finite('it must be a number'), v.minValue(LIMITS.usdPerHour.min, `it must be at least $${LIMITS.usdPerHour.min}`), v.maxValue(LIMITS.usdPerHour.max, `it must be at most $${LIMITS.usdPerHour.max}`)),
  theme: v.picklist(THEMES),
  /** The longest reply the agent may generate in one go, in tokens (the model's max_tokens). */
  replyTokens: v.pipe(v.number(), v.integer('it must be a whole number'), v.minValue(LIMITS.replyTokens.min, `it must be at least ${LIMITS.replyTokens.min} tokens`), v.maxValue(LIMITS.replyTokens.max, `it must be at most ${LIMITS.replyTokens.max} tokens`)),
  /** The engine's context on this device, in tokens (at most the model's own): more holds longer chats, and costs memory. */
  contextSize: v.pipe(v.number(), v.integer('it must be a whole number'), v.minValue(LIMITS.contextSize.min, `it must be at least ${LIMITS.contextSize.min} tokens`), v.maxValue(LIMITS.contextSize.max, `it must be at most ${LIMITS.contextSize.max} tokens`)),
  /**
   * The web-llm model sessions run on where this device's GPU can (chosen on the Models screen); '' for the CPU.
   * The chosen GGUF model stays the session's model: wllama runs it when the GPU cannot, and the cloud runs it.
   */
  gpuModel: v.pipe(v.string(), v.maxLength(256)),
  /** Sessions' GGUF model runs on this device's GPU (llama.cpp's WebGPU backend) where it can and no GPU model is chosen. */
  ggufOnGpu: v.boolean(),
  /**
   * How new sessions pick each token, for every agent without sampling of its own (below): temperature 0 is greedy
   * (the same reply every time); above it, tokens are drawn from (seed, position), so a session gives the same reply
   * for the same seed. Recorded in each session's checkpoints.
   */
  ...SamplingSchema.entries,
  /** Agents (by session template) that sample their own way: these replace the fields above for their sessions. */
  agentSampling: v.record(v.picklist(TEMPLATE_IDS), SamplingSchema),
});
export type Settings = v.InferOutput<typeof SettingsSchema>;

/** How Settings names each field in an error. */
const SETTING_LABELS: Record<string, string> = {
  relayUrl: 'Relay URL',
  privacy: 'Where your sessions may run',
  privacyAsked: 'Where your sessions may run',
  objective: 'Placement objective',
  budgetUsd: 'Budget per step on paid workers',
  usdPerHour: 'Value of your time',
  theme: 'Theme',
  replyTokens: 'Reply length',
  contextSize: 'Context size',
  gpuModel: 'GPU model',
  ggufOnGpu: 'GGUF models on the GPU',
  temperature: 'Temperature',
  topP: 'Top-p',
  topK: 'Top-k',
  minP: 'Min-p',
  repeatPenalty: 'Repetition penalty',
  seed: 'Seed',
};

/** A field's name as Settings shows it; an agent's own sampling field with the agent's name. */
function settingLabel(key: string): string {
  const [top, agent, field] = key.split('.');
  if (top === 'agentSampling' && agent && field) return `${templateName(agent as TemplateId)}: ${SETTING_LABELS[field] ?? field}`;
  return SETTING_LABELS[key] ?? key;
}

/** Greedy decoding: the default, and what the sampling fields mean when untouched. */
export const GREEDY: SamplingFields = { temperature: 0, topP: 1, topK: 0, minP: 0, repeatPenalty: 1, seed: 0 };
export const SAMPLING_FIELDS = Object.keys(GREEDY) as (keyof SamplingFields)[];

/** A session's sampling settings (the neutral ones left out). */
export type SessionSampling = { temperature: number; seed: number; topP?: number; topK?: number; minP?: number; repeatPenalty?: number };

/** Sampling fields as a session's sampling settings. */
export function samplingOf(s: SamplingFields): SessionSampling {
  return {
    temperature: s.temperature,
    seed: s.seed,
    ...(s.topP < 1 ? { topP: s.topP } : {}),
    ...(s.topK > 0 ? { topK: s.topK } : {}),
    ...(s.minP > 0 ? { minP: s.minP } : {}),
    ...(s.repeatPenalty !== 1 ? { repeatPenalty: s.repeatPenalty } : {}),
  };
}

/** How each agent's new sessions sample: its own fields where Settings give it some, else those for all agents. */
export function samplingByTemplate(s: Pick<Settings, keyof SamplingFields | 'agentSampling'>): Record<TemplateId, SessionSampling> {
  return Object.fromEntries(TEMPLATE_IDS.map((t) => [t, samplingOf(s.agentSampling[t] ?? s)])) as Record<TemplateId, SessionSampling>;
}

export const DEFAULT_SETTINGS: Settings = { relayUrl: '', privacy: 'this-device', privacyAsked: false, objective: 'balanced', budgetUsd: 0, usdPerHour: DEFAULT_PREFS.usdPerHour, theme: 'system', replyTokens: 512, contextSize: 4096, gpuModel: '', ggufOnGpu: true, ...GREEDY, agentSampling: {} };

/**
 * What placement decides by, from Settings: the objective (with balanced's price of time), the privacy, and the
 * budget (0 rules paid workers out).
 */
export function placementPrefs(settings: Pick<Settings, 'objective' | 'privacy' | 'budgetUsd' | 'usdPerHour'>): PlacementPrefs {
  return { objective: settings.objective, privacy: settings.privacy, budgetUsd: settings.budgetUsd, usdPerHour: settings.usdPerHour };
}

/**
 * The model this device runs sessions with: one the relay serves (downloaded into the OPFS cache), or a GGUF file
 * the user picked from disk (copied into the same cache under `file`).
 */
const ModelChoiceSchema = v.variant('source', [
  v.object({ source: v.literal('relay'), id: sha256, name: v.pipe(v.string(), v.maxLength(256)), bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), contextSize: v.pipe(v.number(), v.integer(), v.minValue(1)), url: v.pipe(v.string(), v.url(), v.maxLength(2048)) }),
  // `id`: the file's SHA-256 (absent in choices saved by older builds, whose engine hashes the file itself).
  v.object({ source: v.literal('file'), name: v.pipe(v.string(), v.maxLength(256)), bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), file: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}\.gguf$/)), id: v.optional(sha256) }),
]);
export type ModelChoice = v.InferOutput<typeof ModelChoiceSchema>;

/** Whether two choices are the same model file. */
export function sameModel(a: ModelChoice, b: ModelChoice): boolean {
  return a.source === b.source && (a.source === 'relay' ? a.id === (b as typeof a).id && a.url === (b as typeof a).url : a.file === (b as typeof a).file);
}

/** Where settings and the model choice are kept: the app database's `settings` store. */
export class DeviceSettings {
  constructor(private readonly db: AppDatabase) {}

  async settings(): Promise<Settings> {
    const stored = (await this.db.get('settings', 'settings')) as Partial<Settings> | undefined;
    // Saved before the question was asked: a privacy other than the default was the person's own choice.
    const asked = stored?.privacy !== undefined && stored.privacy !== DEFAULT_SETTINGS.privacy;
    const parsed = v.safeParse(SettingsSchema, { ...DEFAULT_SETTINGS, privacyAsked: asked, ...stored });
    return parsed.success ? parsed.output : { ...DEFAULT_SETTINGS };
  }

  async saveSettings(next: Settings): Promise<Settings> {
    const parsed = v.safeParse(SettingsSchema, next);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      const key = issue ? v.getDotPath(issue) : null;
      throw new FerryError('app/bad-settings', `Setting "${key ? settingLabel(key) : '?'}" is invalid: ${issue?.message ?? 'invalid'}. Correct it and save again.`);
    }
    if (parsed.output.replyTokens >= parsed.output.contextSize) {
      throw new FerryError('app/bad-settings', `The reply length (${parsed.output.replyTokens} tokens) must be smaller than the context size (${parsed.output.contextSize} tokens), which also holds the conversation; lower the one or raise the other.`);
    }
    if (parsed.output.relayUrl) checkRelayUrl(parsed.output.relayUrl);
    await writing(() => this.db.put('settings', parsed.output, 'settings'));
    return parsed.output;
  }

  async modelChoice(): Promise<ModelChoice | null> {
    const parsed = v.safeParse(ModelChoiceSchema, await this.db.get('settings', 'model').catch(() => undefined));
    return parsed.success ? parsed.output : null;
  }

  async saveModelChoice(choice: ModelChoice): Promise<ModelChoice> {
    const parsed = v.safeParse(ModelChoiceSchema, choice);
    if (!parsed.success) throw new FerryError('app/bad-model', `The model record is invalid (${parsed.issues[0]?.message ?? 'invalid'}); choose the model again on the Models screen.`);
    await writing(() => this.db.put('settings', parsed.output, 'model'));
    return parsed.output;
  }
}

function checkRelayUrl(text: string): void {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FerryError('app/bad-relay-url', `"${text}" is not a URL; enter one like https://relay.example.org (or leave it empty to use this site).`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FerryError('app/bad-relay-url', 'The relay URL must start with https:// (or http:// on a local network).');
}
