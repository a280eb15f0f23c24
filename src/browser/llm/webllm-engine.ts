/**
 * The web-llm engine (MLC, WebGPU), opened inside the agent or node worker. Prompts run through web-llm's
 * `forwardTokensAndSample` (exact ids in, one id out per step), so a transcript resumes token-identically; the model
 * is loaded with temperature 0 for that reason, and other temperatures are refused. Its KV cache stays between
 * generations: a prompt that extends what the cache holds (the next step of a session) feeds only its new tokens
 * (appendPlan). Where web-llm's vocabulary is the session's GGUF's, token for token, its ids are the GGUF's and a
 * session moves between them by ids. web-llm's own failures become typed errors: a lost device or an out-of-memory
 * tells the caller to fall back to wllama.
 */
import type { MLCEngine } from '@mlc-ai/web-llm';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { appendPlan } from '../../core/llm/append-plan.ts';
import { checkRequest, GenerationClock, preparePrompt, StopSequences } from '../../core/llm/index.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest } from '../../core/llm/index.ts';
import type { WebLlmModelRecord } from './webllm-catalog.ts';
import { fetchChatTemplate } from './webllm-template.ts';

export interface WebLlmEngineOptions {
  readonly modelId: string;
  readonly modelList?: readonly WebLlmModelRecord[];
  readonly contextSize?: number;
  readonly onProgress?: (progress: { progress: number; text: string }) => void;
  /**
   * Read the model's chat template (webllm-template.ts) so `messages` prompts work — agents need it. Checked before
   * the weights are downloaded: a model whose prompts cannot be rendered is refused (CPU fallback) at once.
   */
  readonly chatTemplate?: boolean;
  /** The session's GGUF vocabulary: where web-llm's tokens are exactly these, in this order, its tokenizer id is theirs. */
  readonly vocabulary?: SharedVocabulary;
}

export interface SharedVocabulary {
  readonly tokenizerId: string;
  readonly tokens: readonly string[];
}

/** Tokenizer of a loaded pipeline: web-llm keeps it private, so its shape is checked before use. */
interface PipelineTokenizer {
  encode(text: string): Int32Array;
  decode(ids: Int32Array): string;
  getVocabSize(): number;
  idToToken(id: number): string;
}

/**
 * web-llm's tokenizer id: the GGUF's where its token table (tokens by id) is the GGUF's exactly — a transcript's ids
 * then mean the same tokens on both, and move as they are — its own otherwise (transcripts are re-tokenized).
 */
export function webLlmTokenizerId(modelId: string, table: readonly string[], gguf: SharedVocabulary | undefined): string {
  const same = gguf !== undefined && table.length === gguf.tokens.length && table.every((token, id) => token === gguf.tokens[id]);
  return same ? gguf.tokenizerId : `web-llm:${modelId}`;
}

export async function createWebLlmEngine(options: WebLlmEngineOptions): Promise<WebLlmEngine> {
  const webllm = await import('@mlc-ai/web-llm');
  const modelList = (options.modelList ?? webllm.prebuiltAppConfig.model_list) as WebLlmModelRecord[];
  const record = modelList.find((m) => m.model_id === options.modelId);
  if (!record) {
    throw new FerryError('llm/unknown-model', `web-llm has no model ${JSON.stringify(options.modelId)} in its catalog. Pick one of the models the app lists for this device.`, {
      details: { modelId: options.modelId },
    });
  }
  const template = options.chatTemplate ? await fetchChatTemplate(record) : undefined;
  const engine = new webllm.MLCEngine({
    appConfig: { ...webllm.prebuiltAppConfig, model_list: modelList as never },
    ...(options.onProgress ? { initProgressCallback: (r: { progress: number; text: string }) => options.onProgress?.({ progress: r.progress, text: r.text }) } : {}),
  });
  try {
    await engine.reload(options.modelId, { temperature: 0, top_p: 1, ...(options.contextSize ? { context_window_size: options.contextSize } : {}) });
  } catch (cause) {
    await engine.unload().catch(() => undefined);
    throw webLlmError(cause, record, 'load');
  }
  const contextSize = options.contextSize ?? record.overrides?.context_window_size ?? 4096;
  const tokenizer = await Promise.resolve()
    .then(() => pipelineTokenizer(engine, options.modelId))
    .catch(async (err: unknown) => {
      await engine.unload().catch(() => undefined);
      throw err;
    });
  const table = Array.from({ length: tokenizer.getVocabSize() }, (_, id) => tokenizer.idToToken(id));
  const info: EngineInfo = {
    id: 'web-llm',
    kind: 'webgpu',
    model: options.modelId,
    tokenizerId: webLlmTokenizerId(options.modelId, table, options.vocabulary),
    contextSize,
    kvState: false,
    grammar: false,
    addBos: false,
    device: `WebGPU: ${await engine.getGPUVendor().catch(() => 'unknown adapter')}`,
    ...(template ? { chatTemplate: template.chatTemplate } : {}),
    ...(template?.bosToken ? { bosToken: template.bosToken } : {}),
    ...(template?.eosToken ? { eosToken: template.eosToken } : {}),
  };
  return new WebLlmEngine(engine, info, tokenizer);
}

export class WebLlmEngine implements Engine {
  #busy: Promise<unknown> = Promise.resolve();
  /** The ids whose KV web-llm's sequence holds, in order. */
  #cached: number[] = [];

  constructor(
    private readonly engine: MLCEngine,
    readonly info: EngineInfo,
    private readonly tokenizer: PipelineTokenizer,
  ) {}

  async tokenize(text: string, _options?: { readonly special?: boolean }): Promise<number[]> {
    return Array.from(this.tokenizer.encode(text));
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    return this.tokenizer.decode(Int32Array.from(ids));
  }

  async releaseSlot(_slot: string): Promise<void> {
    // One sequence: the next prompt keeps what it extends of it, whichever slot it names.
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    checkRequest(request, this.info.contextSize);
    if (request.grammar) throw new FerryError('llm/grammar-unsupported', 'The web-llm engine here does not take a grammar.');
    if ((request.temperature ?? 0) !== 0) {
      throw new FerryError('llm/unsupported', 'The web-llm engine runs token-exact (greedy) generation only; use temperature 0, or the wllama engine for sampling.');
    }
    return this.#generate(request);
  }

  async dispose(): Promise<void> {
    await this.#busy.catch(() => undefined);
    await this.engine.unload();
  }

  async *#generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    let release!: () => void;
    const previous = this.#busy;
    this.#busy = new Promise<void>((resolve) => (release = resolve));
    await previous.catch(() => undefined);
    try {
      const clock = new GenerationClock();
      const prompt = await preparePrompt(this, request.prompt);
      const stops = new StopSequences(request.stop);
      const tokens: number[] = [];
      let text = '';
      let finish: FinishReason = 'length';
      let decoded = '';
      let held: { id: number; text: string } | undefined;
      const plan = appendPlan(this.#cached, prompt);
      if (plan.keep === 0) {
        this.#cached = [];
        await this.engine.resetChat();
      }
      let next = await this.#forward(plan.feed, true);
      while (tokens.length < request.maxTokens) {
        if (request.signal?.aborted) {
          finish = 'cancelled';
          break;
        }
        clock.token();
        tokens.push(next);
        // Decoding the whole tail keeps multi-token characters intact; only the new part is emitted.
        const all = this.tokenizer.decode(Int32Array.from(tokens));
        const piece = stops.push(all.slice(decoded.length));
        decoded = all;
        text += piece;
        // An event is held while its text may still change (part of a stop sequence), so token texts always
        // concatenate to the final text.
        if (held) yield { type: 'token', ...held };
        held = { id: next, text: piece };
        if (stops.stopped) {
          finish = 'stop';
          break;
        }
        if (!stops.holding) {
          yield { type: 'token', ...held };
          held = undefined;
        }
        if (tokens.length < request.maxTokens) next = await this.#forward([next], false);
      }
      const rest = stops.flush();
      text += rest;
      if (stops.stopped && finish === 'length') finish = 'stop'; // a stop sequence decided only at the end
      if (held) yield { type: 'token', ...held, text: held.text + rest };
      yield { type: 'done', finishReason: finish, text, tokens, stats: clock.stats(prompt.length, plan.keep, tokens.length) };
    } catch (cause) {
      // What the sequence holds after a failure is unknown: the next prompt starts over.
      this.#cached = [];
      throw isFerryError(cause) ? cause : webLlmError(cause, undefined, 'generate');
    } finally {
      release();
    }
  }

  /** Feeds `ids` after what the sequence holds; the cache then holds them too. */
  async #forward(ids: readonly number[], prefill: boolean): Promise<number> {
    const next = await this.engine.forwardTokensAndSample([...ids], prefill);
    this.#cached.push(...ids);
    return next;
  }
}

function pipelineTokenizer(engine: MLCEngine, modelId: string): PipelineTokenizer {
  const pipelines = (engine as unknown as { loadedModelIdToPipeline?: Map<string, { tokenizer?: PipelineTokenizer }> }).loadedModelIdToPipeline;
  const tokenizer = pipelines?.get(modelId)?.tokenizer;
  if (!tokenizer || !(['encode', 'decode', 'getVocabSize', 'idToToken'] as const).every((f) => typeof tokenizer[f] === 'function')) {
    throw new FerryError('llm/unsupported', 'This web-llm version does not expose its tokenizer; token prompts cannot be prepared.');
  }
  return tokenizer;
}

/** Maps web-llm's failures to typed errors; `fallback` in details tells the client to switch to wllama. */
export function webLlmError(cause: unknown, record: WebLlmModelRecord | undefined, phase: 'load' | 'generate'): FerryError {
  const name = cause instanceof Error ? cause.name || cause.constructor.name : '';
  const message = cause instanceof Error ? cause.message : String(cause);
  const model = record ? ` ${record.model_id}` : '';
  if (/DeviceLost|device (was )?lost/i.test(`${name} ${message}`)) {
    return new FerryError('llm/webgpu-lost', `The GPU device was lost while ${phase === 'load' ? 'loading' : 'running'} the model${model} (driver reset or memory pressure). Switching to llama.cpp on the CPU.`, { cause, details: { fallback: 'wllama', engine: 'web-llm' } });
  }
  if (/out of memory|OOM|allocation failed|exceeds limit/i.test(message)) {
    return new FerryError('llm/out-of-memory', `The GPU ran out of memory for the model${model}. Switching to llama.cpp on the CPU; a smaller model may fit the GPU.`, { cause, details: { fallback: 'wllama', engine: 'web-llm' } });
  }
  if (/WebGPU|ShaderF16|FeatureSupport/i.test(`${name} ${message}`)) {
    return new FerryError('llm/webgpu-unsupported', `This device's WebGPU cannot run the model${model}: ${message}`, { cause, details: { fallback: 'wllama', engine: 'web-llm' } });
  }
  if (phase === 'load' && /fetch|network|Failed to fetch|NetworkError|404|status/i.test(message)) {
    return new FerryError('llm/model-unreachable', `web-llm could not download the model${model}: ${message}. Check the connection (or the relay's model mirror) and try again; parts already downloaded stay cached.`, { cause, details: { fallback: 'wllama', engine: 'web-llm' } });
  }
  return new FerryError(phase === 'load' ? 'llm/load-failed' : 'llm/engine-failed', `web-llm failed to ${phase === 'load' ? 'load' : 'run'} the model${model}: ${message}`, { cause });
}
