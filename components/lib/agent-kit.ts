/**
 * The building block every built-in agent shares: a conversation with the model that may call tools. The host's
 * action loop (src/core/runtime/loop.ts) renders the prompt and appends the tool instructions for the tools the
 * agent declared; this side keeps the messages, parses the tool calls out of each generation with the one
 * tagged-JSON parser (src/core/llm/tool-calls.ts, bundled into the component), answers malformed calls with an
 * error observation, and waits until every call's result is back before asking the model again.
 *
 * Everything here is plain module state inside the component: the host checkpoints it with the memory image.
 */
import { describeToolCallErrors, parseToolCalls } from '../../src/core/llm/tool-calls.ts';
import type { AgentEvent, AgentAction as HostAction, Generation, WitMessage, WitToolResult } from '../../src/core/runtime/wit.ts';

export type { AgentEvent, ChildResult, Generation, SubTask, WitMessage, WitToolResult } from '../../src/core/runtime/wit.ts';

/** Inside a component, WIT `option<T>` is `T | null` (componentize-qjs); the host side sees `T | undefined`. */
export interface GenerateParams {
  maxTokens: number | null;
  temperature: number | null;
  stop: string[];
}

/** An action as the component returns it (the host's AgentAction, with the guest's representation of options). */
export type AgentAction = Exclude<HostAction, { tag: 'generate' }> | { tag: 'generate'; val: { messages: WitMessage[]; params: GenerateParams } };

/** A tool observation longer than this is cut before it goes into the conversation, to protect the context. */
export const MAX_OBSERVATION_CHARS = 6000;

export interface TurnOptions {
  /** Model rounds (generations) one turn may take before it is stopped; bounds a model that keeps calling tools. */
  maxRounds?: number;
  maxTokens?: number;
  temperature?: number;
}

/** What a conversation event led to: more work for the host, or the model's final answer for this turn. */
export type Outcome =
  | { kind: 'working'; actions: AgentAction[] }
  | { kind: 'final'; text: string; stopped?: 'rounds' | 'cancelled' | 'length' };

export class Conversation {
  readonly messages: WitMessage[];
  readonly #known: ReadonlySet<string>;
  readonly #prefix: string;
  readonly #options: Required<Pick<TurnOptions, 'maxRounds'>> & TurnOptions;
  #pending = new Map<string, string>();
  #results: WitMessage[] = [];
  #rounds = 0;
  #calls = 0;

  /**
   * `tools`: the names the model may call (the agent's declared tools). `prefix` makes this conversation's call
   * ids unique within the agent, so results route back to the conversation that asked.
   */
  constructor(system: string, tools: readonly string[], prefix: string, options: TurnOptions = {}) {
    this.messages = [{ role: 'system', content: system }];
    this.#known = new Set(tools);
    this.#prefix = prefix;
    this.#options = { maxRounds: 12, ...options };
  }

  /** Starts a turn: the user's (or the agent's) message, then a generation. */
  ask(text: string): AgentAction[] {
    this.messages.push({ role: 'user', content: text });
    this.#rounds = 0;
    return [this.#generate()];
  }

  /** Feeds a correction back to the model within the same turn (e.g. "your outline is not valid JSON"). */
  correct(text: string): Outcome {
    this.messages.push({ role: 'user', content: text });
    return this.#next();
  }

  /** True when `id` is a tool call this conversation made and still waits for. */
  owns(id: string): boolean {
    return this.#pending.has(id);
  }

  get waiting(): boolean {
    return this.#pending.size > 0;
  }

  onGeneration(g: Generation): Outcome {
    this.messages.push({ role: 'assistant', content: g.text });
    if (g.finishReason === 'cancelled') return { kind: 'final', text: g.text.trim(), stopped: 'cancelled' };
    const parsed = parseToolCalls(g.text, this.#known);
    if (parsed.calls.length === 0 && parsed.errors.length === 0) {
      return { kind: 'final', text: parsed.text, ...(g.finishReason === 'length' ? { stopped: 'length' as const } : {}) };
    }
    // Malformed calls go back as an observation; well-formed ones in the same reply still run.
    if (parsed.errors.length > 0) this.#results.push({ role: 'tool', content: describeToolCallErrors(parsed.errors) });
    if (parsed.calls.length === 0) return this.#answer();
    const actions: AgentAction[] = parsed.calls.map((call) => {
      const id = `${this.#prefix}${++this.#calls}`;
      this.#pending.set(id, call.name);
      return { tag: 'call-tool', val: { id, name: call.name, args: JSON.stringify(call.arguments) } };
    });
    return { kind: 'working', actions };
  }

  /** A result for one of this conversation's calls; once all are in, the model is asked again. */
  onToolResult(r: WitToolResult): Outcome {
    if (!this.#pending.delete(r.id)) return { kind: 'working', actions: [] };
    this.#results.push({ role: 'tool', content: observation(r) });
    return this.#pending.size > 0 ? { kind: 'working', actions: [] } : this.#answer();
  }

  /** The text of the model's last message (for a summary when a turn was stopped). */
  lastAssistantText(): string {
    for (let i = this.messages.length - 1; i >= 0; i--) if (this.messages[i]!.role === 'assistant') return this.messages[i]!.content;
    return '';
  }

  #answer(): Outcome {
    this.messages.push(...this.#results);
    this.#results = [];
    return this.#next();
  }

  #next(): Outcome {
    if (this.#rounds >= this.#options.maxRounds) {
      return { kind: 'final', text: parseToolCalls(this.lastAssistantText()).text, stopped: 'rounds' };
    }
    return { kind: 'working', actions: [this.#generate()] };
  }

  #generate(): AgentAction {
    this.#rounds++;
    return {
      tag: 'generate',
      val: {
        messages: this.messages.map((m) => ({ role: m.role, content: m.content })),
        params: { maxTokens: this.#options.maxTokens ?? null, temperature: this.#options.temperature ?? null, stop: [] },
      },
    };
  }
}

/** How a tool result reads to the model: which tool, whether it worked, the (clipped) output. */
export function observation(r: WitToolResult): string {
  const output = r.output.length <= MAX_OBSERVATION_CHARS ? r.output : `${r.output.slice(0, MAX_OBSERVATION_CHARS)}\n… [${r.output.length - MAX_OBSERVATION_CHARS} more characters not shown]`;
  return r.ok ? `Result of ${r.name}:\n${output}` : `Error from ${r.name}: ${output}`;
}

/**
 * The task a `start` event carries: plain text, or a JSON object (e.g. {"topic": …, "sources": […]}) for agents
 * that take structured input. Returns the object, or `{ task: text }` for plain text.
 */
export function parseTask(text: string): Record<string, unknown> {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const value: unknown = JSON.parse(trimmed);
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    } catch {
      // Not JSON after all: a task that happens to start with "{".
    }
  }
  return { task: text };
}

/**
 * The first JSON value in a model's answer: a ```json fenced block, else the outermost {…} or […]. Returns the
 * value, or a message saying what is wrong (fed back to the model).
 */
export function extractJson(text: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  const fenced = /```(?:json)?\s*\n([\s\S]*?)```/.exec(text);
  let candidate = fenced?.[1];
  if (candidate === undefined) {
    const start = text.search(/[{[]/);
    if (start === -1) return { ok: false, problem: 'The answer contains no JSON.' };
    const close = text[start] === '{' ? '}' : ']';
    const end = text.lastIndexOf(close);
    if (end <= start) return { ok: false, problem: 'The JSON in the answer is not closed.' };
    candidate = text.slice(start, end + 1);
  }
  try {
    return { ok: true, value: JSON.parse(candidate) };
  } catch (err) {
    return { ok: false, problem: `The JSON in the answer does not parse (${err instanceof Error ? err.message : String(err)}).` };
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A string field of a model-written object, trimmed; '' when absent or not a string. */
export function field(obj: Record<string, unknown>, key: string): string {
  const v = obj[key];
  return typeof v === 'string' ? v.trim() : '';
}

/** A list of strings from a model-written object (non-strings dropped). */
export function stringList(obj: Record<string, unknown>, key: string): string[] {
  const v = obj[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string' && x.trim() !== '').map((x) => x.trim()) : [];
}

/** Hands a generation or tool result to the conversation it belongs to; undefined when it is not that conversation's. */
export function route(convo: Conversation | undefined, event: AgentEvent): Outcome | undefined {
  if (!convo) return undefined;
  if (event.tag === 'generation-result') return convo.onGeneration(event.val);
  if (event.tag === 'tool-result' && convo.owns(event.val.id)) return convo.onToolResult(event.val);
  return undefined;
}

/** Runs an agent's event handler so that a bug in it becomes a reply, never a trap that kills the instance. */
export function guarded(handle: (event: AgentEvent) => AgentAction[], event: AgentEvent): AgentAction[] {
  try {
    return handle(event);
  } catch (err) {
    const why = typeof err === 'string' ? err : err instanceof Error ? err.message : String(err);
    return [{ tag: 'reply', val: `The agent could not go on: ${why}` }, { tag: 'done', val: `failed: ${why}` }];
  }
}

/** "ok" JSON output of a tool as an object, or undefined. */
export function toolJson(output: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(output);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}
