/**
 * The relay's model files for browsers (server/api/model-files.ts): a list, and each GGUF file by content hash,
 * with HTTP Range, so a device without internet still gets a model from its relay and resumes a broken download.
 */
import * as v from 'valibot';
import { API_PREFIX } from './wire.ts';

export const modelPaths = {
  /** GET → HostedModelList. */
  list: `${API_PREFIX}/models`,
  /** GET → the GGUF bytes (Range supported); `file` is `<sha256>.gguf`. */
  file: (file: string) => `${API_PREFIX}/models/${file}`,
} as const;

const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

export const HostedModelSchema = v.object({
  /** SHA-256 of the file: the engines' EngineInfo.model. */
  id: sha256,
  /** How people know it: a catalog name (src/core/llm/catalog.ts), `demo` for the generated model, or the file's name. */
  name: v.pipe(v.string(), v.maxLength(256)),
  /** A longer description for lists ("Qwen2.5 0.5B Instruct, Q4_K_M"); absent from older relays. */
  label: v.optional(v.pipe(v.string(), v.maxLength(256))),
  bytes: v.pipe(v.number(), v.integer(), v.minValue(0)),
  tokenizerId: v.pipe(v.string(), v.maxLength(256)),
  contextSize: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** Where to download it, relative to the relay. */
  url: v.pipe(v.string(), v.maxLength(512)),
});
export type HostedModel = v.InferOutput<typeof HostedModelSchema>;

export const HostedModelListSchema = v.object({ models: v.pipe(v.array(HostedModelSchema), v.maxLength(256)) });
export type HostedModelList = v.InferOutput<typeof HostedModelListSchema>;

/** GET → { models: CatalogEntry[] }: the relay's model catalog (the built-in one plus its deployment's own entries). */
export const catalogPath = `${API_PREFIX}/catalog`;
