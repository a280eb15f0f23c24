/**
 * A scripted Engine for tests of agent logic ONLY (DESIGN.md §8): it answers each generate request with text a
 * test decides from the messages, so an agent's control flow — tool calls, malformed calls, corrections, phases,
 * children — can be driven exactly. Never used by the product; real engines are tested with generated GGUF models.
 */
import type { Engine, EngineInfo, GenerateEvent, GenerateRequest } from '../../src/core/llm/engine.ts';
import type { ChatMessage } from '../../src/core/llm/messages.ts';

/** Decides the model's output for one request; `index` counts requests from 0. */
export type Script = (messages: readonly ChatMessage[], index: number) => string;

export class ScriptedEngine implements Engine {
  readonly info: EngineInfo = {
    id: 'scripted',
    kind: 'native',
    model: 'scripted-test-model',
    tokenizerId: '',
    contextSize: 1 << 20,
    kvState: false,
    grammar: false,
  };
  /** Every request's messages, in order, for assertions on what the agent sent. */
  readonly requests: ChatMessage[][] = [];
  readonly #script: Script;

  constructor(script: Script) {
    this.#script = script;
  }

  /** Answers with `replies` in order; a request past the end fails the test with what the agent asked. */
  static sequence(replies: readonly string[]): ScriptedEngine {
    return new ScriptedEngine((messages, i) => {
      const reply = replies[i];
      if (reply === undefined) throw new Error(`The script has ${replies.length} replies; request ${i + 1} asked after: ${lastText(messages).slice(0, 300)}`);
      return reply;
    });
  }

  async tokenize(text: string): Promise<number[]> {
    return [...text].map((c) => c.codePointAt(0)!);
  }

  async detokenize(ids: readonly number[]): Promise<string> {
    return String.fromCodePoint(...ids);
  }

  async *generate(request: GenerateRequest): AsyncIterable<GenerateEvent> {
    if (!('messages' in request.prompt)) throw new Error('The scripted engine answers chat requests (prompt.messages) only.');
    const messages = request.prompt.messages.map((m) => ({ ...m }));
    this.requests.push(messages);
    const text = this.#script(messages, this.requests.length - 1);
    const tokens = [...text].map((c) => c.codePointAt(0)!);
    // Word-sized token events, so consumers see a stream rather than one blob.
    for (const piece of text.match(/\s*\S+|\s+$/g) ?? []) {
      if (request.signal?.aborted) break;
      yield { type: 'token', id: null, text: piece };
    }
    const cancelled = request.signal?.aborted === true;
    yield {
      type: 'done',
      finishReason: cancelled ? 'cancelled' : 'stop',
      text,
      tokens,
      stats: { promptTokens: 0, cachedTokens: 0, completionTokens: tokens.length, prefillMs: 0, decodeMs: 0, ttftMs: 0, prefillTps: 0, decodeTps: 0 },
    };
  }

  async dispose(): Promise<void> {}
}

/** The content of the last message (the newest instruction or observation the agent sent). */
export function lastText(messages: readonly ChatMessage[]): string {
  return messages[messages.length - 1]?.content ?? '';
}

/** The first user message after the system prompt: what a phase of the agent asked for. */
export function firstUserText(messages: readonly ChatMessage[]): string {
  return messages.find((m) => m.role === 'user')?.content ?? '';
}

/** A tool call written the way the agents' models are told to write it. */
export function toolCall(name: string, args: Record<string, unknown>): string {
  return `<tool_call>${JSON.stringify({ name, arguments: args })}</tool_call>`;
}
