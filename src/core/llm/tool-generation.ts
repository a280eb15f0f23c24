import { FerryError } from '../errors.ts';
import type { Engine, FinishReason, GenerateEvent, GenerateRequest, GenerationStats, SpeculativeTally } from './engine.ts';
import type { JsonGrammarLimits } from './json-grammar.ts';
import { preparePrompt } from './prompt.ts';
import { TOOL_CALL_OPEN, type ToolSpec } from './tool-calls.ts';
import { toolCallGrammar } from './tool-grammar.ts';

/**
 * Generation with tools: the reply's text stays free, and a tool call is constrained once it starts. Two phases
 * that alternate: free text with the opening tag as a stop sequence; when the model writes the tag, the engine
 * goes on under the call's grammar (tool-grammar.ts) until the closing tag, then free text again. Each phase is
 * one engine request over the prompt plus every id so far, so the engine's KV cache carries across phases.
 *
 * Why phases and not one grammar for the whole reply: free text under a grammar costs a grammar check on every
 * token; a grammar cannot start in the middle of a call (wllama 3's completion API takes no grammar state), while a
 * phase can; and the engines need nothing beyond `grammar` on a request. A call is decoded greedily, so it is the
 * same on every engine with the same model file, and a generation cut inside a call is continued by writing the
 * call again from its start, which gives the same ids (see `GeneratedSoFar.openCall`).
 *
 * Engines without grammar support (`info.grammar` false, e.g. an OpenAI-compatible upstream) generate freely; a
 * malformed call then goes back to the model as an error observation (tool-calls.ts).
 */

/** Which calls the reply may or must make (OpenAI's tool_choice). */
export type ToolChoice = 'auto' | 'required' | 'none' | { readonly name: string };

export interface ToolUse {
  readonly tools: readonly ToolSpec[];
  /** Default 'auto'. 'required' and a named tool make the reply one call and nothing else. */
  readonly choice?: ToolChoice;
  readonly limits?: Partial<JsonGrammarLimits>;
}

/** Where a call that has not closed yet began: its grammar restarts there. */
export interface OpenCall {
  /** Ids before the call's body (the opening tag included, when the model wrote it). */
  readonly tokens: number;
  /** Characters of text before it. */
  readonly text: number;
}

/** A generation to continue (cut by a stop or a move): its ids and text, and the call it was in the middle of. */
export interface GeneratedSoFar {
  readonly tokens: readonly number[];
  readonly text: string;
  readonly openCall?: OpenCall;
}

export type ToolGenerationEvent =
  | Extract<GenerateEvent, { type: 'token' }>
  | (Extract<GenerateEvent, { type: 'done' }> & {
    readonly openCall?: OpenCall;
    /** Calls completed under the grammar. */
    readonly calls: number;
    /** The sampler's position after the generation: where the next token of the sequence would be. */
    readonly position: number;
  });

type Mode = 'free' | 'call' | 'tagged-call';

/**
 * Generates with tools. `request.maxTokens` is the whole generation's budget, `sofar` included; with `sofar` the
 * done event holds the whole generation (its ids and text first), and token events only what is new.
 */
export async function* generateWithTools(engine: Pick<Engine, 'info' | 'tokenize' | 'detokenize' | 'generate'>, request: GenerateRequest, use: ToolUse, sofar?: GeneratedSoFar): AsyncGenerator<ToolGenerationEvent> {
  const choice = use.choice ?? 'auto';
  const tools = typeof choice === 'object' ? use.tools.filter((t) => t.name === choice.name) : use.tools;
  if (typeof choice === 'object' && tools.length === 0) {
    throw new FerryError('llm/bad-request', `tool_choice names "${choice.name}", which is not one of the tools: ${use.tools.map((t) => t.name).join(', ') || 'none'}.`);
  }
  if (request.grammar) throw new FerryError('llm/bad-request', 'A generation with tools builds its own grammar; send either tools or a grammar.');
  const constrained = engine.info.grammar && choice !== 'none' && tools.length > 0;
  if (!constrained && !sofar) {
    // Nothing to constrain: one plain generation, its prompt as given (an upstream may need the messages themselves).
    for await (const event of engine.generate(request)) {
      if (event.type === 'token') yield event;
      else yield { ...event, calls: 0, position: event.stats.promptTokens + event.tokens.length };
    }
    return;
  }
  const prompt = await preparePrompt(engine, request.prompt);
  const stops = [...(request.stop ?? [])];
  // A cut call is written again from its start: greedy under the same grammar, it comes out the same.
  const resumeFrom = sofar?.openCall && constrained ? sofar.openCall : undefined;
  const tokens = [...(sofar?.tokens ?? [])].slice(0, resumeFrom?.tokens);
  let text = (sofar?.text ?? '').slice(0, resumeFrom?.text);
  // Ids already streamed before the cut are not streamed again.
  let quiet = (sofar?.tokens.length ?? 0) - tokens.length;
  // A call resumes under its own grammar: with the opening tag where the grammar wrote it (a required call).
  let mode: Mode = resumeFrom ? (text.endsWith(TOOL_CALL_OPEN) ? 'call' : 'tagged-call') : constrained && choice !== 'auto' && tokens.length === 0 ? 'tagged-call' : 'free';
  let openCall: OpenCall | undefined = resumeFrom;
  let calls = 0;
  let finish: FinishReason = 'length';
  let ranOn: Extract<GenerateEvent, { type: 'done' }>['engine'];
  let speculative: SpeculativeTally | undefined;
  const totals = new StatsSum();

  while (tokens.length < request.maxTokens) {
    const left = request.maxTokens - tokens.length;
    const phase: GenerateRequest =
      mode === 'free'
        ? { ...request, prompt: { tokens: [...prompt, ...tokens] }, maxTokens: left, ...(constrained || stops.length > 0 ? { stop: constrained ? [...stops, TOOL_CALL_OPEN] : stops } : {}) }
        : {
          ...withoutSampling(request),
          prompt: { tokens: [...prompt, ...tokens] },
          maxTokens: left,
          grammar: { kind: 'gbnf', text: toolCallGrammar(tools, { withOpenTag: mode === 'tagged-call', budget: left, ...(use.limits ? { limits: use.limits } : {}) }).gbnf },
        };
    if (mode === 'tagged-call') openCall = { tokens: tokens.length, text: text.length };
    let done: Extract<GenerateEvent, { type: 'done' }> | undefined;
    for await (const event of engine.generate(phase)) {
      if (event.type === 'done') {
        done = event;
        break;
      }
      if (quiet > 0) quiet--;
      else yield event;
    }
    if (!done) throw new FerryError('llm/no-done', `Engine ${engine.info.id} ended a generation without its done event; the engine adapter is faulty.`);
    totals.add(done.stats);
    ranOn = done.engine ?? ranOn;
    speculative = addTally(speculative, done.speculative);
    let phaseIds = [...done.tokens];
    let phaseText = done.text;
    const tagged = mode === 'free' && constrained && done.finishReason === 'stop' ? await tagIds(engine, prompt[prompt.length - 1]!, phaseIds, stops) : undefined;
    if (tagged) {
      phaseIds = tagged;
      phaseText += TOOL_CALL_OPEN;
      // The phase stopped on the tag, so no token's text carried it: it streams as text of its own.
      yield { type: 'token', id: null, text: TOOL_CALL_OPEN };
    }
    tokens.push(...phaseIds);
    text += phaseText;
    finish = done.finishReason;
    if (finish === 'cancelled') break;
    if (tagged) {
      mode = 'call';
      openCall = { tokens: tokens.length, text: text.length };
      continue;
    }
    if (mode === 'free') break; // the model ended its reply (or hit the budget)
    if (finish === 'length') break; // the call did not fit: it stays open
    // The grammar completed: the call is whole.
    calls++;
    openCall = undefined;
    if (choice !== 'auto') break;
    mode = 'free';
  }
  yield { type: 'done', finishReason: finish, text, tokens, stats: totals.stats(), calls, position: prompt.length + tokens.length, ...(openCall ? { openCall } : {}), ...(ranOn ? { engine: ranOn } : {}), ...(speculative ? { speculative } : {}) };
}

/** Two phases' speculative tallies as one (the later phase's models). */
function addTally(a: SpeculativeTally | undefined, b: SpeculativeTally | undefined): SpeculativeTally | undefined {
  if (!a || !b) return b ?? a;
  return { ...b, rounds: a.rounds + b.rounds, drafted: a.drafted + b.drafted, accepted: a.accepted + b.accepted, rejected: a.rejected + b.rejected };
}

/** A call is decoded greedily: the same ids on every engine with the same model file. */
function withoutSampling(request: GenerateRequest): GenerateRequest {
  const { temperature: _t, topK: _k, topP: _p, minP: _m, repeatPenalty: _r, stop: _s, ...rest } = request;
  return { ...rest, temperature: 0 };
}

/**
 * When a free phase stopped on the opening tag, the ids that end exactly with it; undefined when another stop
 * sequence ended it. The last id may run past the tag (`>{"`): it is then replaced by the ids of the tag's rest,
 * so the call's grammar starts right after the tag.
 */
async function tagIds(engine: Pick<Engine, 'tokenize' | 'detokenize'>, anchor: number, ids: readonly number[], stops: readonly string[]): Promise<number[] | undefined> {
  const textOf = async (part: readonly number[]) => (await engine.detokenize([anchor, ...part])).slice((await engine.detokenize([anchor])).length);
  const full = await textOf(ids);
  const at = full.indexOf(TOOL_CALL_OPEN);
  if (at === -1 || stops.some((s) => full.indexOf(s) !== -1 && full.indexOf(s) < at + TOOL_CALL_OPEN.length - 1)) return undefined;
  const end = at + TOOL_CALL_OPEN.length;
  if (full.length === end) return [...ids];
  let keep = ids.length - 1;
  let covered = await textOf(ids.slice(0, keep));
  while (keep > 0 && covered.length > end) covered = await textOf(ids.slice(0, --keep));
  return [...ids.slice(0, keep), ...(await engine.tokenize(full.slice(covered.length, end)))];
}

/** The stats of several phases as one generation: the first phase's prompt and first token, all phases' work. */
class StatsSum {
  #first: GenerationStats | undefined;
  #completion = 0;
  #prefillMs = 0;
  #decodeMs = 0;

  add(stats: GenerationStats): void {
    this.#first ??= stats;
    this.#completion += stats.completionTokens;
    this.#prefillMs += stats.prefillMs;
    this.#decodeMs += stats.decodeMs;
  }

  stats(): GenerationStats {
    const first = this.#first ?? { promptTokens: 0, cachedTokens: 0, ttftMs: 0, prefillTps: 0 };
    return {
      promptTokens: first.promptTokens,
      cachedTokens: first.cachedTokens,
      completionTokens: this.#completion,
      prefillMs: this.#prefillMs,
      decodeMs: this.#decodeMs,
      ttftMs: first.ttftMs,
      prefillTps: first.prefillTps,
      decodeTps: this.#decodeMs > 0 ? (this.#completion * 1000) / this.#decodeMs : 0,
    };
  }
}
