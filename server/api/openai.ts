import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import * as v from 'valibot';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest, GenerationStats, Grammar, Prompt } from '../../src/core/llm/engine.ts';
import type { ChatMessage } from '../../src/core/llm/messages.ts';
import { StopSequences } from '../../src/core/llm/stop.ts';
import { parseToolCalls, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, toolInstructions, type ToolSpec } from '../../src/core/llm/tool-calls.ts';
import { generateWithTools, type ToolChoice, type ToolUse } from '../../src/core/llm/tool-generation.ts';
import { clientErrorOf, statusFor } from '../relay/errors.ts';

/**
 * An OpenAI-compatible API served from Engines: `GET /v1/models`, `POST /v1/chat/completions` and
 * `POST /v1/completions` (a text or a token-id prompt, as vLLM and llama.cpp's server accept), with SSE streaming
 * and usage. The relay registers it with its workers' engines (relay/worker-engines.ts); a client going away
 * cancels its generation.
 */

/**
 * What the API needs of an engine: generation, and generation with tools (the phases of llm/tool-generation.ts,
 * which need the engine's tokenizer: a local engine runs them here, a relay worker on its side).
 */
export interface ServingEngine {
  readonly info: EngineInfo;
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
  generateWithTools(request: GenerateRequest, use: ToolUse): AsyncIterable<GenerateEvent>;
}

/** A local engine as the API serves it. */
export function servingEngine(engine: Engine): ServingEngine {
  return {
    info: engine.info,
    generate: (request) => engine.generate(request),
    generateWithTools: (request, use) => generateWithTools(engine, request, use),
  };
}

/** The engines behind the API: every one there is (for the model list), and the one to serve a model with. */
export interface EngineSource {
  all(): readonly ServingEngine[];
  /** Throws api/unknown-model when no engine serves `model`. */
  pick(model: string): ServingEngine;
}

export interface OpenAiApiOptions {
  /** One engine behind the API (a function, so the caller can swap models without re-registering)… */
  readonly engine?: Engine | (() => Engine);
  /** …or several (the relay's workers). */
  readonly engines?: EngineSource;
  /**
   * With `engines`: the name clients see for an engine's model id (a GGUF file's SHA-256), e.g. its catalog name;
   * undefined keeps the id. Requests may use either.
   */
  readonly names?: (model: string) => string | undefined;
  /** With `engine`: the model name clients see and must send; default: the engine's model id. */
  readonly modelName?: string;
  /** max_tokens when a request gives none. Default 512. */
  readonly defaultMaxTokens?: number;
}

const ToolCallSchema = v.object({
  id: v.pipe(v.string(), v.maxLength(256)),
  type: v.literal('function'),
  function: v.object({ name: v.pipe(v.string(), v.minLength(1), v.maxLength(256)), arguments: v.string() }),
});

const Message = v.object({
  role: v.picklist(['system', 'developer', 'user', 'assistant', 'tool']),
  content: v.optional(v.nullable(v.union([v.string(), v.array(v.object({ type: v.literal('text'), text: v.string() }))]))),
  name: v.optional(v.string()),
  /** An assistant turn's calls (its content may then be null). */
  tool_calls: v.optional(v.nullable(v.pipe(v.array(ToolCallSchema), v.maxLength(64)))),
  /** A tool message answers this call. */
  tool_call_id: v.optional(v.string()),
});

const ToolSchema = v.object({
  type: v.literal('function'),
  function: v.object({
    name: v.pipe(v.string(), v.regex(/^[a-zA-Z0-9_-]{1,64}$/, 'a tool name is 1 to 64 letters, digits, _ or -')),
    description: v.optional(v.pipe(v.string(), v.maxLength(64 * 1024))),
    parameters: v.optional(v.record(v.string(), v.unknown())),
    strict: v.optional(v.nullable(v.boolean())),
  }),
});

const ToolChoiceSchema = v.union([
  v.picklist(['none', 'auto', 'required']),
  v.object({ type: v.literal('function'), function: v.object({ name: v.string() }) }),
]);

const Common = {
  model: v.string(),
  max_tokens: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1)))),
  max_completion_tokens: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1)))),
  temperature: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(2)))),
  top_p: v.optional(v.nullable(v.pipe(v.number(), v.gtValue(0), v.maxValue(1)))),
  top_k: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0)))),
  /** llama.cpp's extensions, as its server takes them. */
  min_p: v.optional(v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(1)))),
  repeat_penalty: v.optional(v.nullable(v.pipe(v.number(), v.minValue(1), v.maxValue(10)))),
  seed: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff)))),
  stop: v.optional(v.nullable(v.union([v.string(), v.array(v.string())]))),
  stream: v.optional(v.nullable(v.boolean())),
  stream_options: v.optional(v.nullable(v.object({ include_usage: v.optional(v.boolean()) }))),
  n: v.optional(v.nullable(v.literal(1))),
  /** Ferry extension: the KV slot (session) to use, so a session's next turn reuses its cache. */
  user: v.optional(v.string()),
  /** As vLLM: each choice also carries the ids of the tokens it generated (`token_ids`). */
  return_token_ids: v.optional(v.nullable(v.boolean())),
};

const ResponseFormat = v.variant('type', [
  v.object({ type: v.literal('text') }),
  v.object({ type: v.literal('json_object') }),
  v.object({ type: v.literal('json_schema'), json_schema: v.object({ name: v.optional(v.string()), schema: v.optional(v.unknown()), strict: v.optional(v.nullable(v.boolean())) }) }),
]);

const ChatBody = v.object({
  ...Common,
  messages: v.pipe(v.array(Message), v.minLength(1)),
  response_format: v.optional(v.nullable(ResponseFormat)),
  tools: v.optional(v.nullable(v.pipe(v.array(ToolSchema), v.maxLength(128)))),
  tool_choice: v.optional(v.nullable(ToolChoiceSchema)),
  parallel_tool_calls: v.optional(v.nullable(v.boolean())),
});
const CompletionBody = v.object({
  ...Common,
  prompt: v.union([v.string(), v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.minLength(1))]),
});

type ChatBody = v.InferOutput<typeof ChatBody>;
type CompletionBody = v.InferOutput<typeof CompletionBody>;

/** OpenAI's error body; `code` carries the FerryError code, `param` the request field at fault where one is. */
function errorBody(err: FerryError, status: number) {
  const param = typeof err.details?.param === 'string' ? err.details.param : null;
  return { error: { message: err.message, type: status < 500 ? 'invalid_request_error' : 'server_error', code: err.code, param } };
}

/** The catalogue's status for the API's, the engines' and the relay's own codes; anything else failed here (500). */
function statusOf(err: FerryError): number {
  return /^(api|llm|relay|http)\//.test(err.code) ? statusFor(err.code) : 500;
}

type Unsupported = Record<string, (value: unknown) => boolean>;

/**
 * OpenAI parameters this API cannot honour: a request that sets one to anything but its neutral value is refused
 * (400 api/unsupported-parameter) rather than answered as if it had been applied. Neutral values (what clients
 * send by default) pass. Function calling (`tools`, `tool_choice`) is served by chat completions; the legacy
 * `functions` form is not.
 */
const UNSUPPORTED: Unsupported = {
  logprobs: (x) => x === false || (typeof x === 'number' && x === 0),
  top_logprobs: (x) => x === 0,
  presence_penalty: (x) => x === 0,
  frequency_penalty: (x) => x === 0,
  logit_bias: (x) => typeof x === 'object' && x !== null && Object.keys(x).length === 0,
  functions: (x) => Array.isArray(x) && x.length === 0,
  function_call: (x) => x === 'none',
  best_of: (x) => x === 1,
  echo: (x) => x === false,
  suffix: (x) => x === '',
};

/** Plain completions have no function calling either. */
const UNSUPPORTED_IN_COMPLETIONS: Unsupported = {
  ...UNSUPPORTED,
  tools: (x) => Array.isArray(x) && x.length === 0,
  tool_choice: (x) => x === 'none',
};

function refuseUnsupported(body: unknown, unsupported: Unsupported): void {
  if (typeof body !== 'object' || body === null) return;
  for (const [param, neutral] of Object.entries(unsupported)) {
    const value = (body as Record<string, unknown>)[param];
    if (value === undefined || value === null || neutral(value)) continue;
    throw new FerryError('api/unsupported-parameter', `"${param}" is not supported by this endpoint; leave it out or set it to its default.`, {
      details: { param },
    });
  }
}

function parse<T extends v.GenericSchema>(schema: T, body: unknown, unsupported: Unsupported = UNSUPPORTED): v.InferOutput<T> {
  refuseUnsupported(body, unsupported);
  const result = v.safeParse(schema, body);
  if (!result.success) {
    const issue = result.issues[0];
    const where = issue ? v.getDotPath(issue) : null;
    throw new FerryError('api/bad-request', `Invalid request body${where ? ` at ${where}` : ''}: ${issue?.message ?? 'not an object'}.`);
  }
  return result.output;
}

function grammarOf(format: ChatBody['response_format']): Grammar | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { kind: 'json-schema', schema: { type: 'object' } };
  return { kind: 'json-schema', schema: format.json_schema.schema ?? { type: 'object' } };
}

function finish(reason: FinishReason, calls = 0): 'stop' | 'length' | 'tool_calls' {
  if (calls > 0) return 'tool_calls';
  return reason === 'length' ? 'length' : 'stop';
}

/** The request's tools as the one tagged-call format describes them, and which calls the reply may make. */
function toolUseOf(body: ChatBody): ToolUse | undefined {
  if (!body.tools || body.tools.length === 0) return undefined;
  const tools: ToolSpec[] = body.tools.map(({ function: f }) => ({ name: f.name, description: f.description ?? '', parameters: f.parameters ?? { type: 'object', properties: {} } }));
  const choice: ToolChoice = typeof body.tool_choice === 'object' && body.tool_choice !== null ? { name: body.tool_choice.function.name } : (body.tool_choice ?? 'auto');
  return { tools, choice };
}

/**
 * OpenAI's messages as the model sees them: the tool instructions after the system message, an assistant's calls
 * written back in the tagged format, a tool result under the name of the call it answers.
 */
function chatMessages(body: ChatBody, use: ToolUse | undefined): ChatMessage[] {
  const callNames = new Map<string, string>();
  const messages: ChatMessage[] = body.messages.map((m) => {
    const content = typeof m.content === 'string' ? m.content : (m.content ?? []).map((part) => part.text).join('');
    const role = m.role === 'developer' ? 'system' : m.role;
    if (m.role === 'assistant' && m.tool_calls?.length) {
      const calls = m.tool_calls.map((call) => {
        callNames.set(call.id, call.function.name);
        return `${TOOL_CALL_OPEN}{"name": ${JSON.stringify(call.function.name)}, "arguments": ${call.function.arguments || '{}'}}${TOOL_CALL_CLOSE}`;
      });
      return { role, content: [content, ...calls].filter((part) => part !== '').join('\n') };
    }
    const name = m.name ?? (m.tool_call_id === undefined ? undefined : callNames.get(m.tool_call_id));
    return { role, content, ...(name === undefined ? {} : { name }) };
  });
  if (!use || use.choice === 'none') return messages;
  const instructions = toolInstructions(use.tools);
  const [first, ...rest] = messages;
  if (first?.role === 'system') return [{ role: 'system', content: `${first.content}\n\n${instructions}` }, ...rest];
  return [{ role: 'system', content: instructions }, ...messages];
}

/** A reply's calls in OpenAI's shape, and its text without them. */
function toolCallsOf(text: string, use: ToolUse) {
  const parsed = parseToolCalls(text, new Set(use.tools.map((t) => t.name)));
  const calls = parsed.calls.map((call) => ({ id: `call_${crypto.randomUUID().replace(/-/g, '')}`, type: 'function' as const, function: { name: call.name, arguments: JSON.stringify(call.arguments) } }));
  return { content: parsed.text, calls };
}

function usage(stats: GenerationStats) {
  return {
    prompt_tokens: stats.promptTokens,
    completion_tokens: stats.completionTokens,
    total_tokens: stats.promptTokens + stats.completionTokens,
    prompt_tokens_details: { cached_tokens: stats.cachedTokens },
  };
}

/** One engine as a source, under the name clients use for it. */
function singleEngine(engine: Engine | (() => Engine), name: string | undefined): { source: EngineSource; nameOf(e: ServingEngine): string } {
  const served = new WeakMap<Engine, ServingEngine>();
  const get = (): ServingEngine => {
    const e = typeof engine === 'function' ? engine() : engine;
    let s = served.get(e);
    if (!s) served.set(e, (s = servingEngine(e)));
    return s;
  };
  const nameOf = (e: ServingEngine): string => name ?? e.info.model;
  return {
    nameOf,
    source: {
      all: () => [get()],
      pick: (model) => {
        const e = get();
        if (model !== nameOf(e)) throw new FerryError('api/unknown-model', `The model "${model}" is not served here; this endpoint serves "${nameOf(e)}" (see GET /v1/models).`);
        return e;
      },
    },
  };
}

export const openAiApi: FastifyPluginAsync<OpenAiApiOptions> = async (app, options) => {
  const names = options.names;
  const { source, nameOf } = options.engines
    ? { source: options.engines, nameOf: (e: ServingEngine) => names?.(e.info.model) ?? e.info.model }
    : options.engine
      ? singleEngine(options.engine, options.modelName)
      : (() => {
          throw new FerryError('api/no-engine', 'The OpenAI-compatible API needs an engine or an engine source.');
        })();
  const created = Math.floor(Date.now() / 1000);

  app.get('/v1/models', async () => {
    // One entry per model, however many workers serve it.
    const models = new Map<string, ServingEngine>();
    for (const e of source.all()) if (!models.has(nameOf(e))) models.set(nameOf(e), e);
    return {
      object: 'list',
      data: [...models].map(([id, e]) => ({ id, object: 'model', created, owned_by: 'ferry', ferry: { model: e.info.model, engine: e.info.id, context_size: e.info.contextSize } })),
    };
  });

  /** Runs one request, as a single JSON answer or as server-sent events. */
  async function serve(request: FastifyRequest, reply: FastifyReply, kind: 'chat' | 'text', body: ChatBody | CompletionBody, prompt: Prompt, grammar?: Grammar, use?: ToolUse): Promise<void> {
    // A model asked for by name goes to the engines whose model has that name.
    const named = options.engines && names ? source.all().find((e) => nameOf(e) === body.model) : undefined;
    const engine = source.pick(named ? named.info.model : body.model);
    const abort = new AbortController();
    // The client went away (closed the stream, or gave up on a long answer): stop generating for it.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) abort.abort();
    });
    const generate: GenerateRequest = {
      prompt,
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? Math.min(options.defaultMaxTokens ?? 512, engine.info.contextSize),
      ...(body.temperature == null ? {} : { temperature: body.temperature }),
      ...(body.top_p == null ? {} : { topP: body.top_p }),
      ...(body.top_k == null ? {} : { topK: body.top_k }),
      ...(body.min_p == null ? {} : { minP: body.min_p }),
      ...(body.repeat_penalty == null ? {} : { repeatPenalty: body.repeat_penalty }),
      ...(body.seed == null ? {} : { seed: body.seed }),
      ...(body.stop == null ? {} : { stop: typeof body.stop === 'string' ? [body.stop] : body.stop }),
      ...(grammar ? { grammar } : {}),
      ...(body.user ? { slot: body.user } : {}),
      signal: abort.signal,
    };
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${crypto.randomUUID()}`;
    const base = { id, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model: body.model };
    const ids = (tokens: readonly number[]) => (body.return_token_ids ? { token_ids: tokens } : {});
    const choice = (text: string, finishReason: string | null, first = false, tokens: readonly number[] = []) =>
      kind === 'chat'
        ? { index: 0, delta: first ? { role: 'assistant', content: text } : { content: text }, finish_reason: finishReason, ...ids(tokens) }
        : { index: 0, text, finish_reason: finishReason, ...ids(tokens) };
    const events = (use ? engine.generateWithTools(generate, use) : engine.generate(generate))[Symbol.asyncIterator]();
    try {
      await respond(events);
    } finally {
      // However the response ended, the generation is closed (an engine frees its slot).
      await events.return?.();
    }

    async function respond(events: AsyncIterator<GenerateEvent>): Promise<void> {
      // The first event is awaited before any header is sent, so a bad request still gets a JSON error status.
      let next = await events.next();
      if (!body.stream) {
        while (!next.done && next.value.type !== 'done') next = await events.next();
        if (next.done || next.value.type !== 'done') throw new FerryError('llm/no-result', 'The engine ended without a result.');
        const done = next.value;
        const called = use ? toolCallsOf(done.text, use) : { content: done.text, calls: [] };
        const message = called.calls.length > 0 ? { role: 'assistant', content: called.content || null, tool_calls: called.calls } : { role: 'assistant', content: done.text };
        const answer =
          kind === 'chat'
            ? { index: 0, message, finish_reason: finish(done.finishReason, called.calls.length), ...ids(done.tokens) }
            : { index: 0, text: done.text, finish_reason: finish(done.finishReason), ...ids(done.tokens) };
        await reply.send({ ...base, object: kind === 'chat' ? 'chat.completion' : 'text_completion', choices: [answer], usage: usage(done.stats) });
        return;
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', ...(reply.getHeaders() as Record<string, string>) });
      const send = (data: unknown) => raw.write(`data: ${JSON.stringify(data)}\n\n`);
      let first = true;
      const content = (text: string, tokens: readonly number[] = []) => {
        if (text === '' && !(body.return_token_ids && tokens.length > 0)) return;
        send({ ...base, choices: [choice(text, null, first, tokens)] });
        first = false;
      };
      // With tools, text streams until a call opens; the calls go out whole once the reply is done.
      const beforeCall = use ? new StopSequences([TOOL_CALL_OPEN]) : undefined;
      try {
        for (; !next.done; next = await events.next()) {
          const event = next.value;
          if (event.type === 'token') {
            content(beforeCall ? beforeCall.push(event.text) : event.text, event.id === null ? [] : [event.id]);
            continue;
          }
          let calls = 0;
          if (use && beforeCall) {
            content(beforeCall.flush());
            const at = event.text.indexOf(TOOL_CALL_OPEN);
            if (at !== -1) {
              const called = toolCallsOf(event.text.slice(at), use);
              content(called.content === '' ? '' : `${at > 0 ? '\n' : ''}${called.content}`);
              calls = called.calls.length;
              if (calls > 0) {
                send({ ...base, choices: [{ index: 0, delta: { ...(first ? { role: 'assistant' } : {}), tool_calls: called.calls.map((call, index) => ({ index, ...call })) }, finish_reason: null }] });
                first = false;
              }
            }
          }
          send({ ...base, choices: [choice('', finish(event.finishReason, calls), first)] });
          if (body.stream_options?.include_usage) send({ ...base, choices: [], usage: usage(event.stats) });
        }
        raw.write('data: [DONE]\n\n');
      } catch (err) {
        // Headers are gone: report the failure in the stream, as OpenAI-compatible servers do.
        const ferry = isFerryError(err) ? err : new FerryError('llm/generate-failed', (err as Error).message, { cause: err });
        send(errorBody(ferry, 500));
      } finally {
        raw.end();
      }
    }
  }

  app.post('/v1/chat/completions', async (request, reply) => {
    const body = parse(ChatBody, request.body);
    const use = toolUseOf(body);
    const grammar = grammarOf(body.response_format);
    if (use && grammar && use.choice !== 'none') throw new FerryError('api/bad-request', 'Send tools or a JSON response_format, not both: a reply is either tool calls and text, or one JSON value.');
    await serve(request, reply, 'chat', body, { messages: chatMessages(body, use) }, grammar, use);
  });

  app.post('/v1/completions', async (request, reply) => {
    const body = parse(CompletionBody, request.body, UNSUPPORTED_IN_COMPLETIONS);
    await serve(request, reply, 'text', body, typeof body.prompt === 'string' ? { text: body.prompt } : { tokens: body.prompt });
  });

  app.setErrorHandler(async (err, request, reply) => {
    const client = isFerryError(err) ? undefined : clientErrorOf(err as Error, 'api');
    if (client) return reply.code(client.status).send(errorBody(new FerryError(client.code, client.message), client.status));
    if (!isFerryError(err)) request.log.error({ err }, 'unexpected failure');
    const ferry = isFerryError(err) ? err : new FerryError('api/internal', 'The request failed unexpectedly; the failure is in the relay\'s log.', { cause: err });
    const status = statusOf(ferry);
    return reply.code(status).send(errorBody(ferry, status));
  });
};
