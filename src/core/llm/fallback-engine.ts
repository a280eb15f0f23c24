/**
 * An engine that hands over to another when it fails in a way the other can take over from — web-llm losing its
 * GPU device or memory, on load or in the middle of a reply, hands over to llama.cpp on the CPU. The failing engine
 * marks such errors with `details.fallback`; anything else stays the caller's error.
 *
 * Mid-generation, the reply is not restarted: the fallback continues it from the prompt and what was generated so
 * far (resumeRequest: the exact ids when both engines share a tokenizer, so greedy decoding goes on
 * token-identically; re-tokenized text otherwise). The caller sees one stream and one `done`; from the switch on,
 * `info` is the fallback's, and the `done` event's ids are in its tokenizer.
 */
import { FerryError, isFerryError } from '../errors.ts';
import type { Engine, EngineInfo, GenerateEvent, GenerateRequest, KvState, VerifyRequest, VerifyResult } from './engine.ts';
import { preparePrompt, renderMessages } from './prompt.ts';
import { GenerationClock } from './stats.ts';
import { resumeRequest, type Transcript } from './transcript.ts';

/** What the person is told when the engine changes under a session. */
export interface EngineSwitch {
  /** The engine that failed, and the one that took over (EngineInfo ids). */
  readonly from: string;
  readonly to: string;
  /** The failure's error code (llm/webgpu-lost, llm/out-of-memory, llm/model-unreachable, …). */
  readonly code: string;
  readonly during: 'load' | 'generation';
  /**
   * Mid-reply: whether the reply went on from its exact ids (both engines speak the same tokenizer, so it continues
   * token for token) or from its text, re-tokenized by the engine that took over.
   */
  readonly ids?: 'carried' | 'retokenized';
  /** For people: what failed and what runs now. */
  readonly message: string;
}

export interface FallbackOptions {
  /** Opens the engine to continue on. Called at most once. */
  open(): Promise<Engine>;
  /** Told once, when the switch has happened. */
  onSwitch?(change: EngineSwitch): void;
}

/** A failure another engine can take over from (the failing adapter says so in `details.fallback`). */
export function canFallBack(err: unknown): err is FerryError {
  return isFerryError(err) && typeof err.details?.fallback === 'string';
}

/**
 * Opens `primary`; if that fails in a way the fallback can take over from, opens the fallback instead (and says
 * so). The engine returned falls back again if the primary fails later, mid-generation.
 */
export async function openWithFallback(primary: () => Promise<Engine>, options: FallbackOptions): Promise<Engine> {
  let engine: Engine;
  try {
    engine = await primary();
  } catch (err) {
    if (!canFallBack(err)) throw err;
    const fallback = await openFallback(options, err);
    options.onSwitch?.(switchOf(err, fallback.info, 'load', undefined));
    return fallback;
  }
  return new FallbackEngine(engine, options);
}

export class FallbackEngine implements Engine {
  #active: Engine;
  #switched: Promise<Engine> | undefined;
  /** Present when the primary verifies drafts; after a switch to an engine that cannot, it says so. */
  readonly verify?: (request: VerifyRequest) => Promise<VerifyResult>;

  constructor(
    primary: Engine,
    private readonly options: FallbackOptions,
  ) {
    this.#active = primary;
    if (primary.verify) {
      this.verify = (request) => {
        const engine = this.#active;
        if (!engine.verify) return Promise.reject(new FerryError('llm/unsupported', `Engine ${engine.info.id} cannot verify drafts.`));
        return engine.verify(request);
      };
    }
  }

  get info(): EngineInfo {
    return this.#active.info;
  }

  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]> {
    return this.#active.tokenize(text, options);
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.#active.detokenize(ids);
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    // After a switch everything goes to the fallback as it is; before, a failure may still hand over.
    return this.#switched ? this.#active.generate(request) : this.#guarded(request);
  }

  saveKv(slot: string): Promise<KvState> {
    const engine = this.#active;
    if (!engine.saveKv) return Promise.reject(new FerryError('llm/unsupported', `Engine ${engine.info.id} cannot save KV state.`));
    return engine.saveKv(slot);
  }

  loadKv(slot: string, state: KvState): Promise<void> {
    const engine = this.#active;
    if (!engine.loadKv) return Promise.reject(new FerryError('llm/unsupported', `Engine ${engine.info.id} cannot load KV state.`));
    return engine.loadKv(slot, state);
  }

  async releaseSlot(slot: string): Promise<void> {
    await this.#active.releaseSlot?.(slot);
  }

  slotTokens(slot: string): readonly number[] | undefined {
    return this.#active.slotTokens?.(slot);
  }

  async dispose(): Promise<void> {
    await this.#switched?.catch(() => undefined);
    await this.#active.dispose();
  }

  async *#guarded(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const primary = this.#active;
    // The prompt's ids are prepared here, once: the primary gets them as they are, and a fallback resumes from them.
    const promptIds = await preparePrompt(primary, request.prompt);
    const clock = new GenerationClock();
    const ids: number[] = [];
    let text = '';
    try {
      for await (const event of primary.generate({ ...request, prompt: { tokens: promptIds } })) {
        if (event.type === 'done') {
          yield event;
          return;
        }
        clock.token();
        if (event.id !== null) ids.push(event.id);
        text += event.text;
        yield event;
      }
      return;
    } catch (err) {
      if (!canFallBack(err) || request.signal?.aborted) throw err;
      const fallback = await this.#switch(err, primary);
      // A stop sequence the primary was still holding back (a partial match) is not carried over: its ids are,
      // so the reply goes on after them; only that held piece of text is missing from the stream.
      const prompt: Transcript = { tokenizerId: primary.info.tokenizerId, tokens: promptIds, text: await promptText(primary, fallback, request, promptIds) };
      const generated: Transcript = { tokenizerId: primary.info.tokenizerId, tokens: ids, text };
      const plan = await resumeRequest(fallback, { prompt, generated, request }).catch((cause: unknown) => {
        if (isFerryError(cause) && cause.code === 'llm/resume-complete') return undefined;
        throw cause;
      });
      const before = sameTokenizer(primary, fallback) ? ids : text ? await fallback.tokenize(text) : [];
      if (!plan) {
        yield { type: 'done', finishReason: 'length', text, tokens: before, stats: clock.stats(promptIds.length, 0, before.length) };
        return;
      }
      for await (const event of fallback.generate(plan.request)) {
        if (event.type === 'token') {
          clock.token();
          yield event;
          continue;
        }
        const tokens = [...before, ...event.tokens];
        yield { ...event, text: text + event.text, tokens, stats: clock.stats(promptIds.length, 0, tokens.length) };
      }
    }
  }

  /** One switch for every generation that fails at once (they share the device that was lost). */
  #switch(err: FerryError, primary: Engine): Promise<Engine> {
    this.#switched ??= (async () => {
      const fallback = await openFallback(this.options, err);
      this.#active = fallback;
      this.options.onSwitch?.(switchOf(err, fallback.info, 'generation', primary.info));
      // The primary is broken; freeing what is left of it must not hold up the reply.
      void primary.dispose().catch(() => undefined);
      return fallback;
    })();
    return this.#switched;
  }
}

async function openFallback(options: FallbackOptions, err: FerryError): Promise<Engine> {
  try {
    return await options.open();
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new FerryError(isFerryError(cause) ? cause.code : 'llm/load-failed', `${err.message} The fallback engine could not be opened either: ${why}`, { cause, details: { first: err.code } });
  }
}

/** The prompt as text for an engine with another tokenizer: its own chat template's rendering where it has one. */
async function promptText(primary: Engine, fallback: Engine, request: GenerateRequest, ids: readonly number[]): Promise<string> {
  if (sameTokenizer(primary, fallback)) return '';
  if ('text' in request.prompt) return request.prompt.text;
  if ('messages' in request.prompt && fallback.info.chatTemplate !== undefined) return renderMessages(fallback.info, request.prompt.messages);
  return primary.detokenize(ids);
}

function sameTokenizer(a: Engine, b: Engine): boolean {
  return a.info.tokenizerId !== '' && a.info.tokenizerId === b.info.tokenizerId;
}

function switchOf(err: FerryError, to: EngineInfo, during: EngineSwitch['during'], from: EngineInfo | undefined): EngineSwitch {
  const failed = from?.id ?? String(err.details?.engine ?? 'the engine');
  const target = to.device ? `${to.id} (${to.device})` : to.id;
  const base = err.message.replace(/\s*(Switching to|Using) llama\.cpp on the CPU[^.]*\.?/i, '').trim();
  if (!from) return { from: failed, to: to.id, code: err.code, during, message: `${base} Running on ${target} instead.` };
  const ids = from.tokenizerId !== '' && from.tokenizerId === to.tokenizerId ? 'carried' : 'retokenized';
  const how = ids === 'carried' ? '' : ' from its text, re-tokenized (the two engines’ tokenizers differ)';
  return { from: failed, to: to.id, code: err.code, during, ids, message: `${base} The reply goes on${how} on ${target} instead.` };
}
