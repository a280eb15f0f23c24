/**
 * A web-llm model's chat template. web-llm renders chats with its own conversation config, but Ferry renders every
 * engine's prompts itself (core/llm/prompt.ts) from the model's Jinja template, so a session's prompt is the same
 * text wherever it runs. MLC's model repositories carry the original model's tokenizer_config.json next to the
 * weights (web-llm itself does not read it): its `chat_template`, `bos_token` and `eos_token` are what we need.
 * Fetched once and kept in Cache Storage, so a model loaded from web-llm's cache also works offline.
 */
import * as v from 'valibot';
import { FerryError } from '../../core/errors.ts';
import type { WebLlmModelRecord } from './webllm-catalog.ts';

export interface WebLlmTemplate {
  readonly chatTemplate: string;
  readonly bosToken?: string;
  readonly eosToken?: string;
}

const CACHE = 'ferry-web-llm-templates';
/** A tokenizer_config.json is a few KiB; one with an embedded vocabulary can reach a few MiB. */
const MAX_CONFIG_BYTES = 8 * 2 ** 20;
const MAX_TEMPLATE_CHARS = 256 * 1024;

const Token = v.union([v.string(), v.object({ content: v.string() })]);
const TokenizerConfig = v.object({
  // Hugging Face allows one template or named ones ("default", "tool_use", …).
  chat_template: v.optional(v.union([v.string(), v.array(v.object({ name: v.string(), template: v.string() }))])),
  bos_token: v.optional(v.nullable(Token)),
  eos_token: v.optional(v.nullable(Token)),
});

/** Where web-llm reads a model's files from (its cleanModelUrl: a bare repository URL means `resolve/main/`). */
export function modelFileUrl(record: Pick<WebLlmModelRecord, 'model'>, file: string): string {
  let base = record.model.endsWith('/') ? record.model : `${record.model}/`;
  if (!/.+\/resolve\/.+\//.test(base)) base += 'resolve/main/';
  return new URL(file, base).href;
}

/** The model's chat template, or a typed error (with `fallback`, so the CPU engine can take over) saying why not. */
export async function fetchChatTemplate(record: WebLlmModelRecord, fetcher: typeof fetch = fetch): Promise<WebLlmTemplate> {
  const url = modelFileUrl(record, 'tokenizer_config.json');
  const fail = (why: string, cause?: unknown) =>
    new FerryError('llm/no-chat-template', `The web-llm model ${record.model_id} has no chat template Ferry can use (${why}). Using llama.cpp on the CPU instead.`, {
      ...(cause === undefined ? {} : { cause }),
      details: { fallback: 'wllama', engine: 'web-llm', url },
    });
  let text: string;
  try {
    text = await cachedText(url, fetcher);
  } catch (cause) {
    throw fail(`tokenizer_config.json could not be fetched: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw fail('tokenizer_config.json is not JSON', cause);
  }
  const parsed = v.safeParse(TokenizerConfig, json);
  if (!parsed.success) throw fail(`tokenizer_config.json is malformed: ${parsed.issues[0]?.message ?? 'invalid'}`);
  const { chat_template: templates, bos_token: bos, eos_token: eos } = parsed.output;
  const chatTemplate = typeof templates === 'string' ? templates : (templates?.find((t) => t.name === 'default') ?? templates?.[0])?.template;
  if (!chatTemplate) throw fail('tokenizer_config.json has no chat_template');
  if (chatTemplate.length > MAX_TEMPLATE_CHARS) throw fail(`its chat_template is over ${MAX_TEMPLATE_CHARS} characters`);
  const token = (t: typeof bos) => (t == null ? undefined : typeof t === 'string' ? t : t.content);
  const bosToken = token(bos);
  const eosToken = token(eos);
  return { chatTemplate, ...(bosToken ? { bosToken } : {}), ...(eosToken ? { eosToken } : {}) };
}

async function cachedText(url: string, fetcher: typeof fetch): Promise<string> {
  const cache = await globalThis.caches?.open(CACHE).catch(() => undefined);
  const hit = await cache?.match(url);
  if (hit) return hit.text();
  const res = await fetcher(url, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_CONFIG_BYTES) throw new Error(`it is ${declared} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  const text = await res.text();
  if (text.length > MAX_CONFIG_BYTES) throw new Error(`it is over the ${MAX_CONFIG_BYTES}-byte limit`);
  await cache?.put(url, new Response(text, { headers: { 'content-type': 'application/json' } })).catch(() => undefined);
  return text;
}
