import { FerryError } from '../errors.ts';
import type { Engine, EngineInfo, FinishReason, GenerateEvent, GenerateRequest, SpeculativeTally } from './engine.ts';
import { checkRequest } from './request.ts';
import { preparePrompt } from './prompt.ts';
import { DraftLength, speculativeRounds, type DraftLengthOptions, type DraftVerifier } from './speculative.ts';
import { GenerationClock } from './stats.ts';
import { StopSequences } from './stop.ts';

/** Where a generation's drafts are verified: a fresh verifier per generation, at its prompt. */
export type VerifierSource = (prompt: readonly number[], signal?: AbortSignal) => Promise<DraftVerifier & { close?(): void }>;

export interface SpeculativeEngineOptions {
  /** The device's engine: it drafts, tokenizes and detokenizes (its vocabulary is the target's). */
  readonly draft: Engine;
  readonly verifiers: VerifierSource;
  /** The target's model and tokenizer ids: the tokens are its greedy tokens, so transcripts name it. */
  readonly target: Pick<EngineInfo, 'model' | 'tokenizerId'>;
  readonly draftLength?: DraftLengthOptions;
}

/** Token texts may end mid-character; more than this many ids pending is not a split character. */
const MAX_PENDING = 4;

/**
 * Speculative decoding behind the one Engine interface: generations are greedy and token-identical to the target's
 * own, so a session's checkpoints are those of any run on the target, and a run cut anywhere resumes on any engine
 * with the target's model exactly. Sampled and grammar-constrained requests run on the draft engine alone.
 */
export class SpeculativeEngine implements Engine {
  readonly info: EngineInfo;

  constructor(private readonly options: SpeculativeEngineOptions) {
    if (options.draft.info.tokenizerId !== '' && options.target.tokenizerId !== '' && options.draft.info.tokenizerId !== options.target.tokenizerId) {
      throw new FerryError('llm/unsupported', 'The draft model\'s vocabulary differs from the target\'s: its ids would mean other tokens. Draft with a model of the same family.');
    }
    const { draft } = options;
    this.info = { ...draft.info, id: 'speculative', kind: 'remote', model: options.target.model, tokenizerId: options.target.tokenizerId, kvState: false, grammar: false, device: `drafts on ${draft.info.device ?? draft.info.id}, verified remotely` };
  }

  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]> {
    return this.options.draft.tokenize(text, options);
  }

  detokenize(ids: readonly number[]): Promise<string> {
    return this.options.draft.detokenize(ids);
  }

  generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    checkRequest(request, this.info.contextSize);
    // Speculative decoding is greedy and unconstrained: a sampled or constrained generation runs on the draft engine
    // alone, unverified, and says so in its done event; the next greedy one is speculative again.
    if ((request.temperature ?? 0) > 0 || request.grammar) return this.#plain(request);
    return this.#generate(request);
  }

  async *#plain(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const { id, kind, model } = this.options.draft.info;
    for await (const event of this.options.draft.generate(request)) yield event.type === 'done' ? { ...event, engine: { id, kind, model } } : event;
  }

  async *#generate(request: GenerateRequest): AsyncGenerator<GenerateEvent> {
    const clock = new GenerationClock();
    const prompt = await preparePrompt(this, request.prompt);
    const budget = Math.min(request.maxTokens, this.info.contextSize - prompt.length);
    if (budget < 1) throw new FerryError('llm/context-full', `The prompt has ${prompt.length} tokens; the context holds ${this.info.contextSize}.`);
    let verifier = await this.options.verifiers(prompt, request.signal);
    const stops = new StopSequences(request.stop);
    const tokens: number[] = [];
    let pending: number[] = [];
    let text = '';
    let last: { id: number; text: string } | undefined;
    let finishReason: FinishReason = 'length';
    const tally = { draftModel: this.options.draft.info.model, targetModel: this.info.model, rounds: 0, drafted: 0, accepted: 0, rejected: 0 };
    try {
      const rounds = speculativeRounds({
        draft: this.options.draft,
        verifier,
        prompt,
        maxTokens: budget,
        draftLength: new DraftLength(this.options.draftLength),
        ...(request.slot === undefined ? {} : { slot: request.slot }),
        ...(request.signal ? { signal: request.signal } : {}),
        // A lost socket or a round the relay gave up on: the generation goes on in a new session from what was decided.
        resume: async (context) => {
          verifier.close?.();
          verifier = await this.options.verifiers(context, request.signal);
          return verifier;
        },
      });
      outer: for await (const round of rounds) {
        countRound(tally, round);
        for (const id of round.ids) {
          clock.token();
          tokens.push(id);
          pending.push(id);
          let piece = await this.#piece([...prompt, ...tokens.slice(0, tokens.length - pending.length)].slice(-8), pending);
          if (piece.endsWith('\uFFFD') && pending.length < MAX_PENDING) piece = '';
          else pending = [];
          const visible = stops.push(piece);
          text += visible;
          if (last) yield { type: 'token', ...last };
          last = { id, text: visible };
          if (stops.stopped) {
            finishReason = 'stop';
            break outer;
          }
          // Nothing held: no later text can belong to this token, so it streams now.
          if (pending.length === 0 && !stops.holding) {
            yield { type: 'token', ...last };
            last = undefined;
          }
        }
        if (round.end) finishReason = 'stop';
      }
      if (finishReason === 'length' && tokens.length < budget && request.signal?.aborted) finishReason = 'cancelled';
    } finally {
      verifier.close?.();
    }
    if (pending.length > 0 && !stops.stopped) {
      const rest = stops.push(await this.#piece(prompt.slice(-8), pending));
      text += rest;
      if (last) last = { ...last, text: last.text + rest };
    }
    const tail = stops.flush();
    text += tail;
    if (stops.stopped && finishReason === 'length') finishReason = 'stop';
    if (last) yield { type: 'token', ...last, text: last.text + tail };
    yield { type: 'done', finishReason, text, tokens, stats: clock.stats(prompt.length, 0, tokens.length), speculative: tally };
  }

  /** The text `ids` add after `context` (so a word keeps the space its context gives it). */
  async #piece(context: readonly number[], ids: readonly number[]): Promise<string> {
    const { draft } = this.options;
    const before = await draft.detokenize(context);
    const after = await draft.detokenize([...context, ...ids]);
    return after.startsWith(before) ? after.slice(before.length) : draft.detokenize(ids);
  }

  async releaseSlot(slot: string): Promise<void> {
    await this.options.draft.releaseSlot?.(slot);
  }

  async dispose(): Promise<void> {
    // The draft engine is the caller's: it may serve other work.
  }
}

/** Adds one verified round to `tally`. */
function countRound(tally: { -readonly [K in keyof SpeculativeTally]: SpeculativeTally[K] }, round: { readonly drafted: number; readonly accepted: number }): void {
  tally.rounds++;
  tally.drafted += round.drafted;
  tally.accepted += round.accepted;
  if (round.accepted < round.drafted) tally.rejected++;
}
