/**
 * A GGUF model on the GPU: wllama 3 (llama.cpp's WebGPU backend, which needs shader-f16) behind the one Engine
 * interface, for devices that have a GPU but no web-llm build of the session's model.
 *
 * wllama 3 serves completions from text only (a token-id prompt breaks its 3.8 glue), so the session's ids go
 * through a tokenizer-only copy of the model on the CPU engine (~16 bytes per vocabulary entry): prompts are prepared
 * there in the model's own ids and handed over as text with special tokens, which llama.cpp tokenizes back to
 * the same ids. Generated ids come back with each token (logprobs). The GPU's arithmetic is not the CPU's, so
 * greedy decoding here may part from the CPU engines after a while; a session moving between them resumes from
 * its exact ids all the same.
 *
 * llama.cpp quietly runs on the CPU when the WebGPU backend cannot take the model; this engine refuses that
 * (with `details.fallback`, so the CPU engine takes over) unless asked to run there too.
 */
import { LoggerWithoutDebug, LogLevel, Wllama, WllamaAbortError } from '@wllama/wllama/esm/index.js';
import wasmUrl from '@wllama/wllama/esm/wasm/wllama.wasm?url';
import { FerryError, isFerryError } from '../../core/errors.ts';
import { blobReader, tokenizerOnlyModel } from '../../core/llm/gguf/index.ts';
import { checkRequest, checkTokenIds, GenerationClock, ggufVocabulary, preparePrompt, roomAfter, StopSequences } from '../../core/llm/index.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest } from '../../core/llm/index.ts';
import type { CpuEngine } from './cpu-engine.ts';
import { checkModelFile, createCpuEngine, fileId } from './cpu-open.ts';

export interface WllamaGpuEngineOptions {
  readonly model: Blob;
  /** EngineInfo.model; default: the file's SHA-256 (files over 1 GiB must give one). */
  readonly modelId?: string;
  /** Default: the model's training context, at most 4096. */
  readonly contextSize?: number;
  /** Run even where llama.cpp offloads no layer to the GPU (default false: refuse, so the CPU engine runs). */
  readonly allowCpu?: boolean;
}

/** What a generated chunk of wllama 3's OpenAI-style stream carries (its TS types omit the token ids). */
interface Chunk {
  readonly choices?: ReadonlyArray<{ readonly text?: string; readonly finish_reason?: string | null; readonly logprobs?: { readonly content?: ReadonlyArray<{ readonly id?: unknown }> } | null }>;
  readonly usage?: { readonly prompt_tokens?: number; readonly prompt_tokens_details?: { readonly cached_tokens?: number } };
}

const DEFAULT_TOP_K = 40;
/** llama.cpp's token type for control tokens (tokenizer.ggml.token_type). */
const CONTROL = 3;
/** llama.cpp's debug line that says where a layer went ("layer   0 assigned to device CPU, is_swa = 0"). */
const LAYER_DEVICE = /layer\s+\d+ assigned to device ([^,\s]+)/;

export async function createWllamaGpuEngine(options: WllamaGpuEngineOptions): Promise<WllamaGpuEngine> {
  const { model } = options;
  const gguf = await checkModelFile(model);
  const modelId = options.modelId ?? (await fileId(model));
  const contextSize = options.contextSize ?? Math.min(gguf.contextLength, 4096);
  const tokenizer = await createCpuEngine({ model: new Blob([await tokenizerOnlyModel(blobReader(model))]), modelId, contextSize: 16 });

  const devices: string[] = [];
  const listen = (...args: unknown[]) => {
    const device = LAYER_DEVICE.exec(args.map(String).join(' '))?.[1];
    if (device) devices.push(device);
  };
  const wllama = new Wllama({ default: wasmUrl }, { suppressNativeLog: false, logger: { ...LoggerWithoutDebug, debug: listen } });
  wllama.setCompat(null); // compat mode fetches a worker from a CDN; Chromium does not need it
  try {
    // One sequence, as on the CPU engine; llama.cpp's layer placement is logged at debug level only.
    await wllama.loadModel([model], { n_ctx: contextSize, n_threads: 1, n_parallel: 1, log_level: LogLevel.DEBUG });
  } catch (cause) {
    await Promise.all([wllama.exit().catch(() => undefined), tokenizer.dispose()]);
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new FerryError('llm/webgpu-unsupported', `wllama could not load the model on the GPU: ${message}. Switching to llama.cpp on the CPU.`, {
      cause,
      details: { fallback: 'wllama', engine: 'wllama-webgpu' },
    });
  }
  const offloaded = devices.filter((d) => d !== 'CPU').length;
  if (offloaded === 0 && !options.allowCpu) {
    await Promise.all([wllama.exit().catch(() => undefined), tokenizer.dispose()]);
    throw new FerryError('llm/webgpu-unsupported', `llama.cpp's WebGPU backend took no layer of the model (0 of ${devices.length}; it needs a GPU with shader-f16). Switching to llama.cpp on the CPU.`, {
      details: { fallback: 'wllama', engine: 'wllama-webgpu', layers: devices.length },
    });
  }
  const loaded = wllama.getLoadedContextInfo();
  // The tokenizing engine's, but for its KV state, which this engine neither saves nor loads.
  const { kvFormat: _tokenizersKv, ...tokenizerInfo } = tokenizer.info;
  const info: EngineInfo = {
    ...tokenizerInfo,
    kvState: false,
    id: 'wllama-webgpu',
    kind: offloaded > 0 ? 'webgpu' : 'wasm-cpu',
    contextSize: loaded.n_ctx,
    grammar: true,
    device: offloaded > 0 ? `GPU (WebGPU, llama.cpp), ${offloaded} of ${devices.length} layers` : `CPU (WebAssembly), 1 thread: llama.cpp put 0 of ${devices.length} layers on a GPU`,
  };
  const vocabulary = await ggufVocabulary(blobReader(model));
  const controls = new Map<number, string>();
  vocabulary.types?.forEach((type, id) => {
    if (type === CONTROL) controls.set(id, vocabulary.tokens[id] ?? '');
  });
  return new WllamaGpuEngine(wllama, tokenizer, info, loaded.token_bos, gguf.vocabSize, controls);
}

export class WllamaGpuEngine implements Engine {
  #disposed = false;
  /** Generations in flight: disposing ends them first (wllama's exit would leave them waiting forever). */
  readonly #running = new Set<AbortController>();

  constructor(
    private readonly wllama: Wllama,
    private readonly tokenizer: CpuEngine,
    readonly info: EngineInfo,
    private readonly bosId: number,
    private readonly vocabularySize: number,
    /** Control token ids and their texts. */
    private readonly controlTokens: ReadonlyMap<number, string>,
  ) {
    this.controlTexts = new Set(controlTokens.values());
  }

  private readonly controlTexts: ReadonlySet<string>;

  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]> {
    return this.tokenizer.tokenize(text, options);
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.tokenizer.detokenize(ids);
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    checkRequest(request, this.info.contextSize);
    if (this.#disposed) throw new FerryError('llm/disposed', 'This engine was disposed; load the model again.');
    return this.#run(request);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const generation of this.#running) generation.abort();
    await Promise.all([this.wllama.exit(), this.tokenizer.dispose()]);
  }

  /**
   * The text llama.cpp turns back into exactly `ids` (it adds BOS itself and parses special tokens in a text
   * prompt). Control tokens decode to nothing, so they go in as their names. A SentencePiece vocabulary puts a
   * word-start space before text that begins a prompt or follows a special token, and decoding shows it: such
   * spaces go, unless the text without them does not give the ids back.
   */
  async #promptText(ids: readonly number[]): Promise<string> {
    const body = ids[0] === this.bosId && this.info.addBos !== false ? ids.slice(1) : ids;
    const parts: string[] = [];
    let run: number[] = [];
    for (const id of [...body, -1]) {
      const control = this.controlTokens.get(id);
      if (control === undefined && id !== -1) {
        run.push(id);
        continue;
      }
      if (run.length > 0) parts.push(await this.tokenizer.detokenize(run));
      if (control !== undefined) parts.push(control);
      run = [];
    }
    const raw = parts.join('');
    const trimmed = parts.map((part) => (this.controlTexts.has(part) ? part : part.replace(/^ /, ''))).join('');
    for (const candidate of trimmed === raw ? [raw] : [trimmed, raw]) {
      const back = await this.tokenizer.tokenize(candidate, { special: true });
      if (back.length === body.length && back.every((id, i) => id === body[i])) return candidate;
    }
    // No text gives these ids back (a reply need not be the tokenizer's own split): the nearest text goes.
    return raw;
  }

  async *#run(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const clock = new GenerationClock();
    const ids = checkTokenIds(await preparePrompt(this, request.prompt), this.vocabularySize);
    const room = roomAfter(ids.length, this.info.contextSize);
    const text = await this.#promptText(ids);
    const temperature = request.temperature ?? 0;
    const grammar = request.grammar;
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    this.#running.add(stop);
    const stops = new StopSequences(request.stop);
    const tokens: number[] = [];
    let shown = '';
    let pending: { id: number; text: string } | undefined;
    let finish: FinishReason = 'length';
    let cached = 0;
    const chunks = new ChunkQueue();
    // Stopping ends the stream here at once, whether or not wllama's completion ever settles.
    stop.signal.addEventListener('abort', () => chunks.end(new WllamaAbortError()), { once: true });
    try {
      if (request.signal?.aborted) throw new WllamaAbortError();
      const completion = this.wllama.createCompletion({
        prompt: text,
        stream: true,
        onData: (chunk: Chunk) => chunks.push(chunk),
        max_tokens: Math.min(request.maxTokens, room),
        temperature,
        seed: request.seed ?? (Math.random() * 2 ** 32) >>> 0,
        top_k: request.topK || DEFAULT_TOP_K,
        top_p: request.topP ?? 1,
        min_p: 0,
        logprobs: 1,
        cache_prompt: true,
        abortSignal: stop.signal,
        ...(grammar === undefined ? {} : grammar.kind === 'gbnf' ? { grammar: grammar.text } : { json_schema: grammar.schema }),
      } as never);
      completion.then(() => chunks.end(), (err: unknown) => chunks.end(err));
      for await (const chunk of chunks) {
        if (chunk.usage) cached = chunk.usage.prompt_tokens_details?.cached_tokens ?? 0;
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const id = choice.logprobs?.content?.[0]?.id;
        if (typeof id === 'number' && !this.wllama.isTokenEOG(id)) {
          clock.token();
          tokens.push(id);
          const piece = stops.push(choice.text ?? '');
          shown += piece;
          // An event is held while its text may still change (part of a stop sequence), so token texts always
          // concatenate to the final text.
          if (pending) yield { type: 'token', ...pending };
          pending = { id, text: piece };
          if (stops.stopped) {
            finish = 'stop';
            stop.abort(); // the rest of the reply is not wanted
            break;
          }
          if (!stops.holding) {
            yield { type: 'token', ...pending };
            pending = undefined;
          }
        }
        if (choice.finish_reason === 'stop') finish = 'stop';
      }
    } catch (cause) {
      if (!(cause instanceof WllamaAbortError) && !stop.signal.aborted) throw runError(cause);
      if (finish !== 'stop') finish = 'cancelled';
    } finally {
      request.signal?.removeEventListener('abort', onAbort);
      this.#running.delete(stop);
      stop.abort(); // a consumer that stops pulling ends the completion too
    }
    if (request.signal?.aborted && finish !== 'stop') finish = 'cancelled';
    if (!stops.stopped) {
      const rest = stops.flush();
      shown += rest;
      if (pending) pending = { id: pending.id, text: pending.text + rest };
      if (stops.stopped && finish === 'length') finish = 'stop'; // a stop sequence decided only at the end
    }
    if (pending) yield { type: 'token', ...pending };
    yield { type: 'done', finishReason: finish, text: shown, tokens, stats: clock.stats(ids.length, cached, tokens.length) };
  }
}

/** Chunks pushed by wllama's onData, pulled by the generation: the completion's end (or failure) ends the queue. */
class ChunkQueue implements AsyncIterable<Chunk> {
  readonly #chunks: Chunk[] = [];
  #ended: { error?: unknown } | undefined;
  #wake: (() => void) | undefined;

  push(chunk: Chunk): void {
    this.#chunks.push(chunk);
    this.#wake?.();
  }

  /** The first end counts: a stop after the completion has finished changes nothing. */
  end(error?: unknown): void {
    this.#ended ??= error === undefined ? {} : { error };
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Chunk> {
    for (;;) {
      const chunk = this.#chunks.shift();
      if (chunk) {
        yield chunk;
        continue;
      }
      if (this.#ended) {
        if ('error' in this.#ended) throw this.#ended.error;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

/** A failure while generating on the GPU: the CPU engine can take over from here (device lost, out of memory…). */
function runError(cause: unknown): FerryError {
  if (isFerryError(cause)) return cause;
  const message = cause instanceof Error ? cause.message : String(cause);
  return new FerryError('llm/webgpu-lost', `llama.cpp's WebGPU backend failed while generating: ${message}. Switching to llama.cpp on the CPU.`, {
    cause,
    details: { fallback: 'wllama', engine: 'wllama-webgpu' },
  });
}
