import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LlamaGrammarEvaluationState, type LlamaContext, type LlamaContextSequence, type LlamaGrammar, type LlamaModel, type Token } from 'node-llama-cpp';
import { FerryError } from '../../src/core/errors.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest, Grammar, KvState, VerifyRequest, VerifyResult } from '../../src/core/llm/engine.ts';
import { jsonSchemaGrammar } from '../../src/core/llm/json-grammar.ts';
import { checkRequest } from '../../src/core/llm/request.ts';
import { candidateCount, sampleToken } from '../../src/core/llm/sampler.ts';
import { checkTokenIds, preparePrompt } from '../../src/core/llm/prompt.ts';
import { GenerationClock } from '../../src/core/llm/stats.ts';
import { StopSequences } from '../../src/core/llm/stop.ts';
import { tokenizerIdOfGguf } from '../../src/core/llm/tokenizer-id.ts';
import { fileSha256 } from './file-hash.ts';
import { openFileReader } from './file-reader.ts';
import { canonicalKv, checkKvState, corruptKv, kvFormatOf, kvForStreams, llamaCppKvFormat } from '../../src/core/llm/kv-state.ts';
import { llamaCppCommit } from './llama-cpp-source.ts';
import { loadNativeModel, type NativeLoadOptions, type NativeModel } from './load-native.ts';
import { SlotPool, type Slot } from './slot-pool.ts';

/**
 * The Engine over node-llama-cpp: one loaded model, one llama.cpp context with a sequence per slot, so several
 * sessions generate at once (llama.cpp batches them together) and each keeps its KV cache between turns.
 * The model file is checked before llama.cpp sees it; KV state is saved and loaded through llama.cpp's sequence
 * state files, guarded by the model's SHA-256 (a state from another model could crash the process).
 */

export interface NodeLlamaEngineOptions extends Omit<NativeLoadOptions, 'gpu'> {
  readonly modelPath: string;
  /** CUDA/Vulkan/Metal where a real GPU is present, else the CPU ('auto', the default); false forces the CPU. */
  readonly gpu?: 'auto' | false;
  /** Sessions served at once (llama.cpp sequences), 1 to 256. Default 4. */
  readonly slots?: number;
  /** Tokens per slot. Default: the model's training context, at most 4096. */
  readonly contextSize?: number;
  /** The file's SHA-256 when already known (e.g. checked at download), to skip hashing it again. */
  readonly modelSha256?: string;
  /** Where KV state files pass through (llama.cpp saves and loads sequence state only via files). */
  readonly tempDir?: string;
}

const ENGINE_ID = 'node-llama-cpp';
/** A token's text may end mid-character; more than this many tokens pending is not a split character. */
const MAX_PENDING_TOKENS = 4;
/** llama.cpp's bound on sequences in one context (n_seq_max): a verifying relay keeps one per speculative session. */
const MAX_SLOTS = 256;
/** Compiled grammars kept for reuse. */
const MAX_GRAMMARS = 32;

export async function createNodeLlamaEngine(options: NodeLlamaEngineOptions): Promise<NodeLlamaEngine> {
  const slots = options.slots ?? 4;
  if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) throw new FerryError('llm/bad-option', `slots must be an integer from 1 to ${MAX_SLOTS}, got ${slots}.`);
  const threads = options.threads ?? 1;
  const native = await loadNativeModel(options.modelPath, { gpu: options.gpu ?? 'auto', threads });
  try {
    const contextSize = options.contextSize ?? Math.min(native.info.contextLength, 4096);
    if (!Number.isInteger(contextSize) || contextSize < 16 || contextSize > native.info.contextLength) {
      throw new FerryError('llm/bad-option', `contextSize must be an integer from 16 to the model's context length ${native.info.contextLength}, got ${contextSize}.`);
    }
    const [sha256, tokenizerId, context, tempDir, commit] = await Promise.all([
      options.modelSha256 ?? fileSha256(options.modelPath),
      tokenizerIdOfFile(options.modelPath),
      native.model.createContext({ contextSize, sequences: slots, threads }),
      mkdtemp(path.join(options.tempDir ?? tmpdir(), 'ferry-kv-')),
      llamaCppCommit(),
    ]);
    return new NodeLlamaEngine(native, context, { sha256, tokenizerId, tempDir, ...(commit ? { kvFormat: llamaCppKvFormat(commit) } : {}) });
  } catch (cause) {
    await native.model.dispose();
    if (cause instanceof FerryError) throw cause;
    throw new FerryError('llm/load-failed', `node-llama-cpp could not create a context for ${options.modelPath}: ${(cause as Error).message}`, { cause });
  }
}

export class NodeLlamaEngine implements Engine {
  readonly info: EngineInfo;
  readonly #model: LlamaModel;
  readonly #native: NativeModel;
  readonly #context: LlamaContext;
  readonly #pool: SlotPool;
  readonly #tempDir: string;
  readonly #grammars = new Map<string, Promise<LlamaGrammar>>();
  #files = 0;
  #disposed = false;

  constructor(native: NativeModel, context: LlamaContext, ids: { sha256: string; tokenizerId: string; tempDir: string; kvFormat?: string }) {
    this.#native = native;
    this.#model = native.model;
    this.#context = context;
    this.#tempDir = ids.tempDir;
    const sequences = Array.from({ length: context.totalSequences }, () => context.getSequence());
    this.#pool = new SlotPool(sequences);
    const tokens = native.model.tokens;
    this.info = {
      id: ENGINE_ID,
      kind: 'native',
      model: ids.sha256,
      tokenizerId: ids.tokenizerId,
      contextSize: context.contextSize,
      kvState: true,
      ...(ids.kvFormat ? { kvFormat: ids.kvFormat } : {}),
      grammar: true,
      ...(native.info.chatTemplate === undefined ? {} : { chatTemplate: native.info.chatTemplate }),
      ...(tokens.bosString === null ? {} : { bosToken: tokens.bosString }),
      ...(tokens.eosString === null ? {} : { eosToken: tokens.eosString }),
      addBos: tokens.shouldPrependBosToken,
      device: native.device,
    };
  }

  /** Sessions that can generate at once. */
  get slots(): number {
    return this.#pool.size;
  }

  async tokenize(text: string, options: { readonly special?: boolean } = {}): Promise<number[]> {
    this.#alive();
    return this.#model.tokenize(text, options.special ?? false);
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    this.#alive();
    if (ids.length === 0) return '';
    return this.#model.detokenize(checkTokenIds(ids, this.#native.info.vocabSize) as Token[]);
  }

  async *generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    this.#alive();
    checkRequest(request, this.info.contextSize);
    const prompt = checkTokenIds(await preparePrompt(this, request.prompt), this.#native.info.vocabSize) as Token[];
    if (prompt.length >= this.info.contextSize) {
      throw new FerryError('llm/context-overflow', `The prompt has ${prompt.length} tokens; this engine's context holds ${this.info.contextSize}. Shorten the conversation or use a larger contextSize.`, {
        details: { promptTokens: prompt.length, contextSize: this.info.contextSize },
      });
    }
    const grammar = request.grammar ? await this.#grammar(request.grammar) : undefined;
    const stops = new StopSequences(request.stop);
    const clock = new GenerationClock();
    const slot = await this.#pool.acquire(request.slot, prompt, request.signal);
    if (!slot) {
      // Cancelled while waiting for a slot: nothing was read, nothing is billed.
      yield { type: 'done', finishReason: 'cancelled', text: '', tokens: [], stats: clock.stats(0, 0, 0) };
      return;
    }
    // The slot is freed before `done` is handed out: a consumer that stops reading there must not hold it.
    let released = false;
    try {
      for await (const event of this.#run(slot, prompt, request, grammar, stops, clock)) {
        if (event.type === 'done') {
          this.#pool.release(slot);
          released = true;
        }
        yield event;
      }
    } finally {
      if (!released) this.#pool.release(slot);
    }
  }

  async *#run(slot: Slot, prompt: Token[], request: GenerateRequest, grammar: LlamaGrammar | undefined, stops: StopSequences, clock: GenerationClock): AsyncGenerator<GenerateEvent> {
    const { sequence } = slot;
    await this.#share(slot, prompt);
    // Keep the cached prefix; at least the last prompt token is evaluated again, to get the next token's logits.
    const cached = Math.min(sequence.compareContextTokens(prompt).firstDifferentIndex, prompt.length - 1);
    if (cached < sequence.nextTokenIndex) await sequence.eraseContextTokenRanges([{ start: cached, end: sequence.nextTokenIndex }]);
    this.#pool.holds(slot, prompt);
    // The budget keeps the sequence inside its context: llama.cpp never shifts it (that would change what the model sees).
    const budget = Math.min(request.maxTokens, this.info.contextSize - prompt.length);
    const generated: Token[] = [];
    let pending: Token[] = [];
    let text = '';
    // A token's event is held only while text is (part of a character, or of a stop sequence): what the stop matcher
    // still holds at the end goes into the last one, so the events' texts always concatenate to the whole text.
    let last: { id: number; text: string } | undefined;
    let finishReason: FinishReason = 'length';
    // Sampling goes through Ferry's sampler (the same tokens as wllama at each seed and position); greedy decoding and
    // grammars stay in llama.cpp.
    const iterator = (request.temperature ?? 0) > 0 && !grammar
      ? this.#sampled(sequence, prompt, cached, request)
      : sequence.evaluate(prompt.slice(cached), {
        temperature: request.temperature ?? 0,
        ...(request.topK === undefined ? {} : { topK: request.topK }),
        ...(request.topP === undefined ? {} : { topP: request.topP }),
        ...(request.minP === undefined ? {} : { minP: request.minP }),
        ...(request.seed === undefined ? {} : { seed: request.seed }),
        ...(grammar ? { grammarEvaluationState: new LlamaGrammarEvaluationState({ model: this.#model, grammar }) } : {}),
      });
    try {
      let ended = true;
      for await (const token of iterator) {
        clock.token();
        generated.push(token);
        pending.push(token);
        const context = [...prompt, ...generated.slice(0, generated.length - pending.length)].slice(-8);
        let piece = this.#model.detokenize(pending, false, context);
        if (piece.endsWith('\uFFFD') && pending.length < MAX_PENDING_TOKENS) piece = '';
        else pending = [];
        const visible = stops.push(piece);
        text += visible;
        if (last) yield { type: 'token', ...last };
        last = { id: token, text: visible };
        if (stops.stopped) {
          finishReason = 'stop';
          ended = false;
          break;
        }
        // Nothing held: no later text can belong to this token, so it streams now.
        if (pending.length === 0 && !stops.holding) {
          yield { type: 'token', ...last };
          last = undefined;
        }
        if (request.signal?.aborted) {
          finishReason = 'cancelled';
          ended = false;
          break;
        }
        if (generated.length >= budget) {
          ended = false;
          break;
        }
      }
      // The iterator ran out by itself: the model produced an end-of-generation token.
      if (ended) finishReason = request.signal?.aborted ? 'cancelled' : 'stop';
    } catch (cause) {
      throw new FerryError('llm/generate-failed', `node-llama-cpp failed while generating: ${(cause as Error).message}`, { cause });
    }
    if (pending.length > 0 && !stops.stopped) {
      const rest = stops.push(this.#model.detokenize(pending, false, prompt.slice(-8)));
      text += rest;
      if (last) last = { ...last, text: last.text + rest };
    }
    const tail = stops.flush();
    text += tail;
    if (stops.stopped && finishReason === 'length') finishReason = 'stop'; // a stop sequence decided only at the end
    if (last) yield { type: 'token', ...last, text: last.text + tail };
    yield { type: 'done', finishReason, text, tokens: generated, stats: clock.stats(prompt.length, cached, generated.length) };
  }

  /**
   * The greedy pick after every position of context + draft, in one evaluation: the context's cached prefix is kept
   * (or copied from another slot), the rest and the draft go in one batch, and every position from the context's last
   * token on asks for its next token. Verifications of several slots queued together go into one llama.cpp batch.
   * The slot then holds context + draft; the next round's context drops the rejected tail.
   */
  async verify(request: VerifyRequest): Promise<VerifyResult> {
    this.#alive();
    const vocabulary = this.#native.info.vocabSize;
    const context = checkTokenIds(request.context, vocabulary) as Token[];
    const draft = (request.draft.length === 0 ? [] : checkTokenIds(request.draft, vocabulary)) as Token[];
    if (context.length === 0) throw new FerryError('llm/bad-request', 'A verification needs a context of at least one token.');
    if (request.slot !== undefined && (typeof request.slot !== 'string' || request.slot.length === 0 || request.slot.length > 200)) {
      throw new FerryError('llm/bad-request', 'slot must be a non-empty string of at most 200 characters.');
    }
    const total = context.length + draft.length;
    if (total >= this.info.contextSize) {
      throw new FerryError('llm/context-overflow', `The context and draft have ${total} tokens; this engine's context holds ${this.info.contextSize}.`, {
        details: { promptTokens: total, contextSize: this.info.contextSize },
      });
    }
    const slot = await this.#pool.acquire(request.slot, context, request.signal);
    if (!slot) throw new FerryError('llm/cancelled', 'The verification was cancelled before it started.');
    try {
      const { sequence } = slot;
      await this.#share(slot, context);
      const cached = Math.min(sequence.compareContextTokens(context).firstDifferentIndex, context.length - 1);
      if (cached < sequence.nextTokenIndex) await sequence.eraseContextTokenRanges([{ start: cached, end: sequence.nextTokenIndex }]);
      this.#pool.holds(slot, [...context, ...draft]);
      const input = [...context.slice(cached), ...draft];
      const first = context.length - 1 - cached;
      const greedy = { generateNext: { token: true, options: { temperature: 0 } } };
      const results = await sequence.controlledEvaluate(input.map((token, i) => (i >= first ? [token, greedy] as const : token)) as Parameters<LlamaContextSequence['controlledEvaluate']>[0]);
      const argmax = input.slice(first).map((_, i) => {
        const token = results[first + i]?.next.token;
        if (token === undefined) throw new FerryError('llm/generate-failed', `node-llama-cpp returned no pick at draft position ${i}.`);
        return token === null || this.#model.isEogToken(token) ? null : token;
      });
      return { argmax, cachedTokens: cached };
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      await slot.sequence.clearHistory().catch(() => undefined);
      throw new FerryError('llm/generate-failed', `node-llama-cpp failed while verifying a draft: ${(cause as Error).message}`, { cause });
    } finally {
      this.#pool.release(slot);
    }
  }

  /**
   * When another slot caches a longer prefix of the prompt (a fork's parent, a sibling, a loaded KV state), its KV
   * cells are copied into this slot up to that prefix, so only the rest is prefilled. The holder may be generating
   * for another session meanwhile: the copy only reads it, between its batches.
   */
  async #share(slot: Slot, prompt: Token[]): Promise<void> {
    if (!canCopy(slot.sequence)) return;
    const holder = this.#pool.holderOf(slot, prompt);
    if (!holder) return;
    const upTo = Math.min(holder.tokens, prompt.length - 1);
    try {
      // False when the holder moved on between its tokens and its cells (mid-batch): start clean rather than guess.
      if (!(await slot.sequence._copyStateFromOtherSequence(holder.slot.sequence, upTo))) await slot.sequence.clearHistory();
    } catch (cause) {
      await slot.sequence.clearHistory().catch(() => undefined);
      throw new FerryError('llm/generate-failed', `node-llama-cpp could not copy the cached prefix of slot ${holder.slot.index}: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * Tokens chosen by Ferry's sampler: llama.cpp hands over the top candidates' probabilities at temperature 1 (its
   * own pick is replaced by the generator's `next(token)`), and the sampler's random number depends only on the
   * seed and the token's position.
   */
  async *#sampled(sequence: LlamaContextSequence, prompt: readonly Token[], cached: number, request: GenerateRequest): AsyncGenerator<Token> {
    const settings = { temperature: request.temperature ?? 0, topK: request.topK, topP: request.topP, minP: request.minP, repeatPenalty: request.repeatPenalty, seed: request.seed ?? 0 };
    const history: number[] = [...prompt];
    const iterator = sequence.evaluateWithMetadata(prompt.slice(cached), { probabilities: true }, { temperature: 1, topK: candidateCount(settings), topP: 1, minP: 0, seed: 0, yieldEogToken: true });
    try {
      for (let result = await iterator.next(); !result.done; ) {
        const candidates = Array.from(result.value.probabilities, ([token, p]) => ({ token, p }));
        const token = sampleToken(candidates, settings, history.length, history) as Token;
        if (this.#model.isEogToken(token)) return;
        yield token;
        history.push(token);
        result = await iterator.next(token);
      }
    } finally {
      await iterator.return();
    }
  }

  slotTokens(slotName: string): readonly number[] | undefined {
    const slot = this.#pool.find(slotName);
    return slot ? [...slot.sequence.contextTokens] : undefined;
  }

  async saveKv(slotName: string): Promise<KvState> {
    this.#alive();
    const slot = await this.#owned(slotName);
    const file = this.#tempFile();
    try {
      await slot.sequence.saveStateToFile(file);
      // Canonical (one-stream) bytes load into a context with any number of slots.
      const bytes = canonicalKv(new Uint8Array(await readFile(file)));
      return { engine: kvFormatOf(this.info), model: this.info.model, tokens: [...slot.sequence.contextTokens], bytes };
    } catch (cause) {
      throw new FerryError('llm/kv-save-failed', `Could not save the KV state of slot ${slotName}: ${(cause as Error).message}`, { cause });
    } finally {
      this.#pool.release(slot);
      await rm(file, { force: true });
    }
  }

  async loadKv(slotName: string, state: KvState): Promise<void> {
    this.#alive();
    const tokens = checkKvState(this.info, state, this.#native.info.vocabSize);
    const bytes = kvForStreams(state.bytes, this.#context.totalSequences);
    const slot = await this.#pool.acquire(slotName, tokens);
    if (!slot) throw new FerryError('llm/disposed', 'The engine was disposed.');
    const file = this.#tempFile();
    try {
      await writeFile(file, bytes);
      await slot.sequence.loadStateFromFile(file, { acceptRisk: true });
      const loaded = slot.sequence.contextTokens;
      if (loaded.length !== tokens.length || loaded.some((t, i) => t !== tokens[i])) {
        await slot.sequence.clearHistory();
        throw corruptKv();
      }
    } catch (cause) {
      if (cause instanceof FerryError) throw cause;
      await slot.sequence.clearHistory().catch(() => undefined);
      throw new FerryError('llm/kv-load-failed', `Could not load the KV state into slot ${slotName}: ${(cause as Error).message}. Re-prefill the transcript instead.`, { cause });
    } finally {
      this.#pool.release(slot);
      await rm(file, { force: true });
    }
  }

  async releaseSlot(slotName: string): Promise<void> {
    this.#pool.forget(slotName);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#pool.close();
    await this.#context.dispose();
    await this.#model.dispose();
    await rm(this.#tempDir, { recursive: true, force: true });
  }

  async #owned(slotName: string): Promise<Slot> {
    if (!this.#pool.find(slotName)) {
      throw new FerryError('llm/unknown-slot', `No cached sequence for slot ${slotName} (never used, released, or evicted by other sessions).`, { details: { slot: slotName } });
    }
    const slot = await this.#pool.acquire(slotName, []);
    if (!slot) throw new FerryError('llm/disposed', 'The engine was disposed.');
    return slot;
  }

  #grammar(grammar: Grammar): Promise<LlamaGrammar> {
    const key = JSON.stringify(grammar);
    let compiled = this.#grammars.get(key);
    if (!compiled) {
      const { llama } = this.#native;
      // JSON schemas go through Ferry's converter, which handles the keywords node-llama-cpp's own converter lacks.
      compiled = Promise.resolve()
        .then(() => llama.createGrammar({ grammar: grammar.kind === 'json-schema' ? jsonSchemaGrammar(grammar.schema) : grammar.text }))
        .catch((cause: unknown) => {
          this.#grammars.delete(key);
          if (cause instanceof FerryError) throw cause;
          throw new FerryError('llm/bad-grammar', `The ${grammar.kind} grammar is not usable: ${(cause as Error).message}`, { cause });
        });
      // Tool-call grammars vary with the budget left: the cache keeps the most recent ones.
      if (this.#grammars.size >= MAX_GRAMMARS) this.#grammars.delete(this.#grammars.keys().next().value!);
      this.#grammars.set(key, compiled);
    }
    return compiled;
  }

  #tempFile(): string {
    return path.join(this.#tempDir, `kv-${process.pid}-${++this.#files}.bin`);
  }

  #alive(): void {
    if (this.#disposed) throw new FerryError('llm/disposed', 'The engine was disposed.');
  }
}

/**
 * node-llama-cpp's in-memory sequence copy (llama_memory_seq_cp, then an erase past `upToTokenIndex`): internal in
 * 3.x, where its decision contexts use it; a version without it only loses prefix sharing (the fork tests notice).
 */
interface CopyableSequence {
  _copyStateFromOtherSequence(other: LlamaContextSequence, upToTokenIndex: number): Promise<boolean>;
}

function canCopy(sequence: LlamaContextSequence): sequence is LlamaContextSequence & CopyableSequence {
  return typeof (sequence as Partial<CopyableSequence>)._copyStateFromOtherSequence === 'function';
}

async function tokenizerIdOfFile(file: string): Promise<string> {
  const reader = await openFileReader(file);
  try {
    return await tokenizerIdOfGguf(reader);
  } finally {
    await reader.close();
  }
}
