/**
 * The CPU engine: llama.cpp compiled to WebAssembly (llama-wasm.ts, built from the source node-llama-cpp ships), behind
 * the one Engine interface. It prefills the exact ids of a session's transcript, so a session resumes
 * token-identically; greedy decoding stays inside llama.cpp, so its ids equal node-llama-cpp's on the same file; a
 * grammar is followed by the core's matcher (gbnf.ts). llama.cpp's calls block the thread they run in: a generation
 * gives the thread a turn between tokens (and a long prompt between batches), so a cancel is seen. Its KV state is
 * llama.cpp's sequence state file, as node-llama-cpp's is (cpu-kv.ts).
 */
import { FerryError, isFerryError } from '../../core/errors.ts';
import {
  checkKvState,
  checkRequest,
  checkTokenIds,
  GenerationClock,
  preparePrompt,
  roomAfter,
  StopSequences,
} from '../../core/llm/index.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest, KvState, VerifyRequest, VerifyResult } from '../../core/llm/index.ts';
import { gbnfMatcher, type GbnfMatcher } from '../../core/llm/gbnf.ts';
import { jsonSchemaGrammar } from '../../core/llm/json-grammar.ts';
import { LlamaWasmError, yieldTurn, type LlamaWasm } from './llama-wasm.ts';
import { loadKvState, saveKvState } from './cpu-kv.ts';
import { tokenPicker, type PickerModel } from './cpu-picker.ts';
import { Utf8Stream } from './utf8-stream.ts';

export class CpuEngine implements Engine {
  /** Ids whose KV is in the context, in order: the next prompt reuses the longest common prefix. */
  #kvTokens: number[] = [];
  #queue: Promise<unknown> = Promise.resolve();
  readonly #pieces = new Map<number, Uint8Array>();
  #disposed = false;
  /** What the token picker reads of the model. */
  readonly #model: PickerModel;

  constructor(
    private readonly llama: LlamaWasm,
    readonly info: EngineInfo,
  ) {
    this.#model = { llama, piece: (id) => this.#piece(id), vocabularySize: llama.vocabularySize };
  }

  tokenize(text: string, options: { readonly special?: boolean } = {}): Promise<number[]> {
    if (typeof text !== 'string') return Promise.reject(new FerryError('llm/bad-request', 'tokenize takes a string.'));
    return this.#exclusive(async () => this.llama.tokenize(text, options.special ?? false));
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.#exclusive(async () => {
      if (ids.length === 0) return '';
      const checked = checkTokenIds(ids, this.llama.vocabularySize);
      const pieces = checked.map((id) => this.#piece(id));
      const bytes = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
      pieces.reduce((at, piece) => (bytes.set(piece, at), at + piece.length), 0);
      return new TextDecoder().decode(bytes);
    });
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    // Checked now, so a bad request throws at the call rather than at the first `next()`.
    checkRequest(request, this.info.contextSize);
    this.#live();
    const grammar = request.grammar && gbnfMatcher(request.grammar.kind === 'gbnf' ? request.grammar.text : jsonSchemaGrammar(request.grammar.schema));
    return this.#generate(request, grammar);
  }

  /**
   * The greedy pick after the context and after each draft id. The context keeps the logits of a batch's last token
   * only, so the draft goes in one id at a time (k + 1 small decodes, not one pass); the context reuses the cached
   * prefix as a generation does. The sequence then holds context + draft.
   */
  verify(request: VerifyRequest): Promise<VerifyResult> {
    this.#live();
    const context = checkTokenIds(request.context, this.llama.vocabularySize);
    const draft = request.draft.length === 0 ? [] : checkTokenIds(request.draft, this.llama.vocabularySize);
    roomAfter(context.length + draft.length, this.info.contextSize);
    return this.#exclusive(async () => {
      try {
        const cached = await this.#prefill([...context], request.signal);
        if (cached === undefined) throw new FerryError('llm/cancelled', 'The verification was cancelled.');
        const argmax: (number | null)[] = [];
        for (let i = 0; ; i++) {
          const id = this.llama.argmax();
          argmax.push(this.llama.isEog(id) ? null : id);
          if (i === draft.length) break;
          await this.llama.decode([draft[i]!]);
          this.#kvTokens.push(draft[i]!);
        }
        return { argmax, cachedTokens: cached };
      } catch (cause) {
        this.#forget();
        throw cause;
      }
    });
  }

  /** The context's KV and the ids it covers: one sequence holds one slot, whichever `slot` names. */
  saveKv(_slot: string): Promise<KvState> {
    return this.#exclusive(async () => saveKvState(this.llama, this.info, this.#kvTokens));
  }

  /** Replaces the context's KV with a saved state of this engine's format and model (checked before llama.cpp reads it). */
  loadKv(_slot: string, state: KvState): Promise<void> {
    this.#live();
    let tokens: number[];
    try {
      tokens = checkKvState(this.info, state, this.llama.vocabularySize);
    } catch (cause) {
      return Promise.reject(cause);
    }
    return this.#exclusive(async () => {
      this.#kvTokens = [];
      try {
        this.#kvTokens = loadKvState(this.llama, state, tokens);
      } catch (err) {
        // Refused or not what it claimed: the context holds nothing to reuse.
        this.#forget();
        throw err;
      }
    });
  }

  async releaseSlot(_slot: string): Promise<void> {
    // One context holds one sequence; forgetting it frees nothing, but the next prompt is prefilled in full.
    await this.#exclusive(async () => this.#forget());
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue.catch(() => undefined);
    this.llama.free();
  }

  async *#generate(request: GenerateRequest, grammar: GbnfMatcher | undefined): AsyncGenerator<GenerateEvent> {
    const release = await this.#lock();
    let released = false;
    try {
      for await (const event of this.#run(request, grammar)) {
        // Unlock before the last event: a consumer may stop pulling once it has 'done'.
        if (event.type === 'done') {
          released = true;
          release();
        }
        yield event;
      }
    } catch (cause) {
      this.#forget();
      throw isFerryError(cause) ? cause : runError(cause);
    } finally {
      if (!released) release();
    }
  }

  async *#run(request: GenerateRequest, grammar: GbnfMatcher | undefined): AsyncGenerator<GenerateEvent> {
    const clock = new GenerationClock();
    const signal = request.signal;
    const prompt = await preparePrompt({ info: this.info, tokenize: async (text, o) => this.llama.tokenize(text, o?.special ?? false) }, request.prompt);
    checkTokenIds(prompt, this.llama.vocabularySize);
    const budget = Math.min(request.maxTokens, roomAfter(prompt.length, this.info.contextSize));
    const stops = new StopSequences(request.stop);
    const text = new Utf8Stream();
    const tokens: number[] = [];
    let shown = '';
    let pending: { id: number; text: string } | undefined;
    let finish: FinishReason = 'length';

    const cached = await this.#prefill(prompt, signal);
    if (cached === undefined) finish = 'cancelled';
    const picker = finish === 'cancelled' ? undefined : tokenPicker(this.#model, request, grammar, prompt, tokens);

    while (finish !== 'cancelled' && tokens.length < budget) {
      if (signal?.aborted) {
        finish = 'cancelled';
        break;
      }
      if (tokens.length > 0) {
        // A turn for the thread's messages (a cancel among them): each step below blocks it.
        await yieldTurn();
        if (signal?.aborted) {
          finish = 'cancelled';
          break;
        }
        await this.llama.decode([tokens[tokens.length - 1]!]);
        this.#kvTokens.push(tokens[tokens.length - 1]!);
      }
      const id = picker!();
      clock.token();
      if (this.llama.isEog(id)) {
        finish = 'stop';
        break;
      }
      tokens.push(id);
      const piece = stops.push(text.push(this.#piece(id)));
      shown += piece;
      // An event is held while its text may still change (part of a stop sequence or of a character): the
      // token texts then always concatenate to the final text.
      if (pending) yield { type: 'token', ...pending };
      pending = { id, text: piece };
      if (stops.stopped) {
        finish = 'stop';
        break;
      }
      if (!text.pending && !stops.holding) {
        yield { type: 'token', ...pending };
        pending = undefined;
      }
    }
    if (!stops.stopped) {
      const rest = stops.push(text.flush()) + stops.flush();
      shown += rest;
      if (pending) pending = { id: pending.id, text: pending.text + rest };
      if (stops.stopped && finish === 'length') finish = 'stop'; // a stop sequence decided only at the end
    }
    if (pending) yield { type: 'token', ...pending };
    yield { type: 'done', finishReason: finish, text: shown, tokens, stats: clock.stats(prompt.length, cached ?? 0, tokens.length) };
  }

  /** Brings the context to exactly `prompt`, decoding only what is not already there; undefined when cancelled. */
  async #prefill(prompt: number[], signal: AbortSignal | undefined): Promise<number | undefined> {
    let common = 0;
    while (common < this.#kvTokens.length && common < prompt.length && this.#kvTokens[common] === prompt[common]) common++;
    // The last prompt token is always decoded again: its logits pick the first new token.
    common = Math.min(common, prompt.length - 1);
    if (this.#kvTokens.length > common) {
      this.llama.keep(common);
      this.#kvTokens.length = common;
    }
    if (signal?.aborted) return undefined;
    if (!(await this.llama.decode(prompt.slice(common), signal))) {
      // Cancelled between batches: drop whatever part was decoded, so the KV matches #kvTokens again.
      this.llama.keep(common);
      return undefined;
    }
    this.#kvTokens = [...prompt];
    return common;
  }

  /** After a failure the context's state is unknown: the next prompt starts from scratch. */
  #forget(): void {
    this.#kvTokens = [];
    try {
      this.llama.keep(0);
    } catch {
      // Already broken: the next decode reports it.
    }
  }

  #piece(id: number): Uint8Array {
    let piece = this.#pieces.get(id);
    if (!piece) {
      piece = this.llama.piece(id);
      this.#pieces.set(id, piece);
    }
    return piece;
  }

  #live(): void {
    if (this.#disposed) throw new FerryError('llm/disposed', 'This engine was disposed; load the model again.');
  }

  /** One llama.cpp context runs one thing at a time: calls wait for each other, in order. */
  #lock(): Promise<() => void> {
    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    const ready = this.#queue.then(() => release);
    this.#queue = this.#queue.then(() => turn);
    return ready;
  }

  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.#live();
    const release = await this.#lock();
    try {
      return await fn();
    } catch (cause) {
      throw isFerryError(cause) ? cause : runError(cause);
    } finally {
      release();
    }
  }
}

export function isOutOfMemory(cause: unknown): boolean {
  const text = cause instanceof Error ? `${cause.name} ${cause.message}` : String(cause);
  return /out of memory|memory access out of bounds|allocation failed|Cannot enlarge memory|failed to allocate|OOM/i.test(text);
}

function runError(cause: unknown): FerryError {
  if (isOutOfMemory(cause)) return new FerryError('llm/out-of-memory', 'The engine ran out of memory while generating. Use a shorter context or a smaller model.', { cause });
  if (cause instanceof LlamaWasmError && cause.reason === 'context-full') {
    return new FerryError('llm/context-full', 'The context is full. Shorten the conversation or load the model with a larger context.', { cause });
  }
  const message = cause instanceof Error ? cause.message : String(cause);
  return new FerryError('llm/engine-failed', `The CPU engine (llama.cpp) failed: ${message}.`, { cause });
}
