import { FerryError } from '../../src/core/errors.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest } from '../../src/core/llm/engine.ts';
import { checkRequest } from '../../src/core/llm/request.ts';
import { GenerationClock } from '../../src/core/llm/stats.ts';
import { StopSequences } from '../../src/core/llm/stop.ts';

/**
 * The Engine over an OpenAI-compatible upstream (vLLM, SGLang, Ollama, llama.cpp's server, or another Ferry
 * relay), so one cloud worker can front a whole serving cluster. Messages go to /v1/chat/completions (the
 * upstream renders its own template); text and token-id prompts go to /v1/completions. Streaming with usage;
 * it cannot tokenize or ship KV state (the standard API has neither), so its tokenizer id is empty and
 * transcripts resume on it from their text (re-prefilled: the cluster's prefix cache spares the recomputation).
 * Where the upstream can say which token ids it generated (vLLM's `return_token_ids`), the generation keeps them.
 */
export interface OpenAiEngineOptions {
  /** e.g. http://host:8000/v1 */
  readonly baseUrl: string;
  readonly model: string;
  readonly apiKey?: string;
  /** The upstream's context length when it does not report one (vLLM reports max_model_len). Default 4096. */
  readonly contextSize?: number;
  /** Per-request time limit for the upstream to answer (not for the whole stream). Default 60 s. */
  readonly timeoutMs?: number;
  /** Ask for the generated token ids (vLLM's `return_token_ids`); default: when the upstream is vLLM or Ferry. */
  readonly tokenIds?: boolean;
}

interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

interface Chunk {
  choices?: Array<{ delta?: { content?: string | null }; text?: string; finish_reason?: string | null; token_ids?: number[] | null }>;
  usage?: Usage | null;
  error?: { message?: string; code?: string };
}

export async function createOpenAiEngine(options: OpenAiEngineOptions): Promise<OpenAiEngine> {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch (cause) {
    throw new FerryError('llm/bad-option', `The upstream URL ${JSON.stringify(options.baseUrl)} is not a URL (expected e.g. http://host:8000/v1).`, { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FerryError('llm/bad-option', `The upstream URL must be http or https, got ${url.protocol}`);
  const engine = new OpenAiEngine(baseUrl, options, options.contextSize ?? 4096);
  const models = (await engine.request('GET', '/models')) as { data?: Array<{ id?: string; owned_by?: string; max_model_len?: number; ferry?: { context_size?: number } }> };
  const entry = models.data?.find((m) => m.id === options.model);
  if (!entry) {
    const names = (models.data ?? []).map((m) => m.id).join(', ');
    throw new FerryError('llm/unknown-model', `The upstream ${baseUrl} does not serve "${options.model}"; it serves: ${names || 'nothing'}.`);
  }
  const reported = entry.max_model_len ?? entry.ferry?.context_size;
  // Only vLLM and Ferry's own /v1 are known to take the extra parameter; OpenAI's own API refuses unknown ones.
  const tokenIds = options.tokenIds ?? (entry.owned_by === 'vllm' || entry.owned_by === 'ferry');
  return new OpenAiEngine(baseUrl, { ...options, tokenIds }, options.contextSize ?? reported ?? engine.info.contextSize);
}

export class OpenAiEngine implements Engine {
  readonly info: EngineInfo;
  readonly #baseUrl: string;
  readonly #options: OpenAiEngineOptions;

  constructor(baseUrl: string, options: OpenAiEngineOptions, contextSize: number) {
    this.#baseUrl = baseUrl;
    this.#options = options;
    this.info = { id: 'openai', kind: 'remote', model: options.model, tokenizerId: '', contextSize, kvState: false, grammar: true, device: baseUrl };
  }

  async tokenize(): Promise<number[]> {
    throw new FerryError('llm/unsupported', `The OpenAI-compatible upstream ${this.#baseUrl} cannot tokenize; send messages or text.`);
  }

  async detokenize(): Promise<string> {
    throw new FerryError('llm/unsupported', `The OpenAI-compatible upstream ${this.#baseUrl} cannot detokenize.`);
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    checkRequest(request, this.info.contextSize);
    const clock = new GenerationClock();
    const stops = new StopSequences(request.stop);
    const { prompt } = request;
    const chat = 'messages' in prompt;
    const body = {
      model: this.#options.model,
      ...(chat ? { messages: prompt.messages } : { prompt: 'tokens' in prompt ? prompt.tokens : prompt.text }),
      max_tokens: request.maxTokens,
      temperature: request.temperature ?? 0,
      ...(request.topP === undefined ? {} : { top_p: request.topP }),
      ...(request.topK === undefined ? {} : { top_k: request.topK }),
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      ...(request.stop?.length ? { stop: request.stop } : {}),
      ...(request.slot === undefined ? {} : { user: request.slot }),
      ...(request.grammar
        ? request.grammar.kind === 'json-schema'
          ? { response_format: { type: 'json_schema', json_schema: { name: 'output', schema: request.grammar.schema } } }
          : { grammar: request.grammar.text } // llama.cpp's server and vLLM take a GBNF/EBNF `grammar` extension
        : {}),
      stream: true,
      stream_options: { include_usage: true },
      ...(this.#options.tokenIds ? { return_token_ids: true } : {}),
    };
    if (request.grammar?.kind === 'gbnf' && chat) {
      throw new FerryError('llm/unsupported', 'A GBNF grammar goes with a text prompt on an OpenAI-compatible upstream; use a JSON schema for chat.');
    }
    if (request.signal?.aborted) {
      yield { type: 'done', finishReason: 'cancelled', text: '', tokens: [], stats: clock.stats(0, 0, 0) };
      return;
    }
    const response = await this.#fetch('POST', chat ? '/chat/completions' : '/completions', body, request.signal);
    if (!response) {
      yield { type: 'done', finishReason: 'cancelled', text: '', tokens: [], stats: clock.stats(0, 0, 0) };
      return;
    }
    let text = '';
    let pieces = 0;
    const ids: number[] = [];
    let usage: Usage | undefined;
    let finishReason: FinishReason = 'length';
    let upstreamFinish: string | null | undefined;
    try {
      for await (const chunk of serverSentEvents(response, request.signal)) {
        if (chunk.error) throw new FerryError('llm/upstream-error', `The upstream failed mid-stream: ${chunk.error.message ?? 'unknown error'}`, { details: { code: chunk.error.code } });
        if (chunk.usage) usage = chunk.usage;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const piece = choice.delta?.content ?? choice.text ?? '';
        const pieceIds = choice.token_ids ?? [];
        if (piece !== '' || pieceIds.length > 0) {
          clock.token();
          pieces++;
          ids.push(...pieceIds);
          const visible = stops.push(piece);
          text += visible;
          // One event per id where the upstream gives them (the chunk's text rides on its first).
          if (pieceIds.length > 0) for (const [i, id] of pieceIds.entries()) yield { type: 'token', id, text: i === 0 ? visible : '' };
          else if (visible !== '') yield { type: 'token', id: null, text: visible };
          if (stops.stopped) break;
        }
        if (choice.finish_reason) upstreamFinish = choice.finish_reason;
      }
    } catch (cause) {
      if (!request.signal?.aborted) {
        if (cause instanceof FerryError) throw cause;
        throw new FerryError('llm/upstream-error', `The upstream stream broke: ${(cause as Error).message}`, { cause });
      }
    }
    const rest = stops.flush();
    if (rest !== '') {
      text += rest;
      yield { type: 'token', id: null, text: rest };
    }
    if (request.signal?.aborted) finishReason = 'cancelled';
    else if (stops.stopped || upstreamFinish === 'stop') finishReason = 'stop';
    else if (upstreamFinish === 'length') finishReason = 'length';
    const completionTokens = usage?.completion_tokens ?? pieces;
    yield {
      type: 'done',
      finishReason,
      text,
      // Complete or not at all: ids for only part of the text would mislead a resume.
      tokens: ids.length > 0 && ids.length === completionTokens ? ids : [],
      stats: clock.stats(usage?.prompt_tokens ?? 0, usage?.prompt_tokens_details?.cached_tokens ?? 0, completionTokens),
    };
  }

  async dispose(): Promise<void> {}

  /** A JSON request to the upstream; typed errors for every way it can fail. */
  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const response = await this.#fetch(method, path, body);
    if (!response) throw new FerryError('llm/cancelled', 'The request was cancelled.');
    try {
      return await response.json();
    } catch (cause) {
      throw new FerryError('llm/upstream-error', `The upstream ${this.#baseUrl}${path} did not answer JSON.`, { cause });
    }
  }

  /** undefined when `signal` aborted it. */
  async #fetch(method: 'GET' | 'POST', path: string, body?: unknown, signal?: AbortSignal): Promise<Response | undefined> {
    const timeout = AbortSignal.timeout(this.#options.timeoutMs ?? 60_000);
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    timeout.addEventListener('abort', onAbort, { once: true });
    let response: Response;
    try {
      response = await fetch(`${this.#baseUrl}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.#options.apiKey ? { authorization: `Bearer ${this.#options.apiKey}` } : {}),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: controller.signal,
      });
    } catch (cause) {
      if (signal?.aborted) return undefined;
      const why = timeout.aborted ? `no answer within ${this.#options.timeoutMs ?? 60_000} ms` : (cause as Error).message;
      throw new FerryError('llm/upstream-unreachable', `Cannot reach the OpenAI-compatible upstream ${this.#baseUrl}${path}: ${why}. Check the URL and that the server runs.`, { cause });
    } finally {
      // Only the wait for the answer is limited; a long stream is not cut off.
      timeout.removeEventListener('abort', onAbort);
    }
    if (!response.ok) {
      const detail = await response.text().catch(() => '');
      let message = detail;
      try {
        message = (JSON.parse(detail) as { error?: { message?: string } }).error?.message ?? detail;
      } catch {
        // not JSON: keep the text
      }
      throw new FerryError('llm/upstream-error', `The upstream ${this.#baseUrl}${path} answered ${response.status}: ${message.slice(0, 500)}`, { details: { status: response.status } });
    }
    return response;
  }
}

/** Parses an SSE body into its JSON `data:` payloads, up to `[DONE]`. */
async function* serverSentEvents(response: Response, signal?: AbortSignal): AsyncGenerator<Chunk> {
  if (!response.body) throw new FerryError('llm/upstream-error', 'The upstream answered without a body.');
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  let buffer = '';
  try {
    for (;;) {
      if (signal?.aborted) return;
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.search(/\r?\n\r?\n/)) !== -1) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        const data = block
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data === '') continue;
        if (data === '[DONE]') return;
        try {
          yield JSON.parse(data) as Chunk;
        } catch (cause) {
          throw new FerryError('llm/upstream-error', `The upstream sent an event that is not JSON: ${data.slice(0, 200)}`, { cause });
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
