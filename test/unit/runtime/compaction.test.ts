/**
 * Conversations past the context: the `assistant` agent (the built component, the whole conversation in its state)
 * on node-llama-cpp with the tiny generated model and a small context. Its oldest turns are left out of the prompt
 * once the conversation outgrows the context, so every turn is answered; the checkpoints keep the whole history and
 * record the compaction; and a reply cut after compaction and continued on an engine with another context size gives
 * the ids of a run that never moved. The compaction rule itself is checked on counted messages first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { compactionNote, fitToContext, type Compaction } from '../../../src/core/llm/compaction.ts';
import type { Engine, GenerateRequest } from '../../../src/core/llm/engine.ts';
import type { ChatMessage } from '../../../src/core/llm/messages.ts';
import { preparePrompt } from '../../../src/core/llm/prompt.ts';
import { decodeHostState, encodeHostState, instanceState, readChain, readHostState } from '../../../src/core/runtime/checkpoint.ts';
import { agentOf, instantiate, type LoadedComponent } from '../../../src/core/runtime/index.ts';
import { AgentRuntime, type RuntimeEvent, type RuntimeSetup } from '../../../src/core/runtime/runtime.ts';
import type { SessionEvent } from '../../../src/core/session/index.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { tinyModelFile } from '../../support/runtime-agent.ts';
import { BUILD_TIMEOUT, component } from '../components/built.ts';

const REPLY = 96;
const SMALL = 1024;
const LARGE = 2048;

/** A real engine whose requests are watched: the prompt each generation got (a continuation's as ids), and its tokens. */
interface Watched {
  engine: Engine;
  prompts: { messages: readonly ChatMessage[]; ids?: readonly number[]; tokens: number }[];
}

function watch(engine: Engine): Watched {
  const prompts: Watched['prompts'] = [];
  const watched = new Proxy(engine, {
    get(target, key) {
      if (key !== 'generate') {
        const value = Reflect.get(target, key, target) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
      return async function* (request: GenerateRequest) {
        for await (const event of target.generate(request)) {
          if (event.type === 'done') {
            const { prompt } = request;
            prompts.push({ messages: 'messages' in prompt ? prompt.messages : [], ...('tokens' in prompt ? { ids: prompt.tokens } : {}), tokens: event.stats.promptTokens });
          }
          yield event;
        }
      };
    },
  });
  return { engine: watched, prompts };
}

let assistant: LoadedComponent;
let small: Engine;
let large: Engine;

beforeAll(async () => {
  assistant = await component('assistant');
  const modelPath = await tinyModelFile();
  small = await createNodeLlamaEngine({ modelPath, gpu: false, threads: 1, slots: 1, contextSize: SMALL });
  large = await createNodeLlamaEngine({ modelPath, gpu: false, threads: 1, slots: 1, contextSize: LARGE });
}, BUILD_TIMEOUT);
afterAll(async () => {
  await small?.dispose();
  await large?.dispose();
});

function setup(engine: Engine): RuntimeSetup {
  return {
    engine,
    load: async (id) => {
      if (id !== assistant.id) throw new Error(`no component ${id}`);
      return assistant;
    },
    sampling: { maxTokens: REPLY, temperature: 0, seed: 0 },
  };
}

const question = (i: number): string => `Question ${i}: tell me once more how the ferry crosses the harbour at dawn.`;

/** One user turn; the events it streamed. `cutAfter` aborts the run once that many tokens of the reply streamed. */
async function turn(runtime: AgentRuntime, input: Parameters<AgentRuntime['run']>[0], cutAfter?: number): Promise<RuntimeEvent[]> {
  const events: RuntimeEvent[] = [];
  const stop = new AbortController();
  let streamed = 0;
  for await (const event of runtime.run(input, stop.signal)) {
    events.push(event);
    if (event.type === 'token' && ++streamed === cutAfter) stop.abort();
  }
  return events;
}

const say = (runtime: AgentRuntime, i: number, cutAfter?: number) => turn(runtime, i === 1 ? { type: 'start', task: question(i) } : { type: 'user', text: question(i) }, cutAfter);
const replies = (events: readonly RuntimeEvent[]): string[] => events.flatMap((e) => (e.type === 'reply' ? [e.text] : []));
const generated = (events: readonly RuntimeEvent[]): number[] => events.flatMap((e) => (e.type === 'generation' ? e.tokens : []));

async function sessionEvents(runtime: AgentRuntime): Promise<SessionEvent[]> {
  return (await runtime.session.history()).reverse().flatMap((h) => h.checkpoint.events);
}

/** The messages the agent restored from checkpoint `at` would send next: its whole conversation as it holds it. */
async function agentMessagesAt(runtime: AgentRuntime, next: string): Promise<ChatMessage[]> {
  const instance = await instantiate(assistant, {});
  await instanceState('agent', instance).restore(await readChain(runtime.session, runtime.head, 'agent'));
  const action = agentOf(instance).step({ tag: 'user-message', val: next }).find((a) => a.tag === 'generate');
  if (action?.tag !== 'generate') throw new Error('the restored agent did not ask for a generation');
  return action.val.messages.map((m) => ({ role: m.role as ChatMessage['role'], content: m.content }));
}

describe('the compaction rule', () => {
  // One token per character: the rule is about turns and counts, whatever counts them.
  const count = async (messages: readonly ChatMessage[]) => messages.reduce((n, m) => n + m.content.length, 0);
  const chat = (turns: number): ChatMessage[] => [
    { role: 'system', content: 'S'.repeat(100) },
    ...Array.from({ length: turns }, (_, i) => [{ role: 'user' as const, content: `u${i}`.padEnd(20, '.') }, { role: 'assistant' as const, content: `a${i}`.padEnd(80, '.') }]).flat(),
  ];

  it('leaves the oldest turns out only when the prompt does not fit, frees half the room, and keeps the system message and the newest turn', async () => {
    expect(await fitToContext(chat(5), { room: 700, count })).toEqual({ messages: chat(5), widened: false, tokens: 600 });
    const wide = await fitToContext(chat(10), { room: 700, count });
    // What always stays (system, note, newest turn) is 293; the target frees half of the other 407 of the room: 496,
    // which 7 turns left out reach (493), and 6 do not (593).
    expect(wide.widened).toBe(true);
    expect(wide.compaction?.turns).toBe(7);
    expect(wide.messages[0]!.content).toBe(`${'S'.repeat(100)}\n\n${compactionNote(7)}`);
    expect(wide.messages.slice(1)).toEqual(chat(10).slice(1 + 2 * 7));
    expect(wide.tokens).toBe(493);
    // A newest turn that fits nowhere: everything else goes, and the count says it still does not fit.
    const huge = [...chat(3), { role: 'user' as const, content: 'x'.repeat(1000) }];
    const tight = await fitToContext(huge, { room: 700, count });
    expect(tight.compaction?.turns).toBe(3);
    expect(tight.tokens).toBeGreaterThan(700);
  });

  it('applies a record as it is while the prompt fits, to the conversation it was made for only, and widens it when it no longer fits', async () => {
    const first = (await fitToContext(chat(10), { room: 700, count })).compaction!;
    // Where the context is larger the record still applies: the same prompt, whatever the engine holds.
    const elsewhere = await fitToContext(chat(10), { room: 5000, count, recorded: first });
    expect(elsewhere).toMatchObject({ widened: false, compaction: first });
    expect(elsewhere.messages).toEqual((await fitToContext(chat(10), { room: 700, count })).messages);
    // Without a way to count (an upstream without a tokenizer), the record is applied and never widened.
    expect((await fitToContext(chat(12), { room: 10, recorded: first })).messages).toEqual(elsewhere.messages.concat(chat(12).slice(21)));
    // Another conversation (another phase of an agent) does not begin with the turns left out: the record does not apply.
    const other = chat(10).map((m) => (m.role === 'user' ? { ...m, content: m.content.toUpperCase() } : m));
    expect(await fitToContext(other, { room: 5000, count, recorded: first })).toEqual({ messages: other, widened: false, tokens: 1100 });
    // Grown past the room again: wider, from where the record was.
    const grown = await fitToContext(chat(14), { room: 700, count, recorded: first });
    expect(grown.widened).toBe(true);
    expect(grown.compaction!.turns).toBeGreaterThan(first.turns);
    const unchanged: Compaction = { ...first, note: 'a note from another build' };
    expect((await fitToContext(chat(10), { room: 700, count, recorded: unchanged })).messages[0]!.content).toMatch(/a note from another build$/);
  });
});

describe('a checkpoint\'s loop state', () => {
  it('keeps a compaction as it was recorded, and refuses a malformed one', async () => {
    const compaction = (await fitToContext([{ role: 'user', content: 'a'.repeat(50) }, { role: 'user', content: 'b' }], { room: 40, count: async (m) => m.reduce((n, x) => n + x.content.length, 0) })).compaction!;
    expect(compaction.turns).toBe(1);
    const host = { loop: { status: 'idle' as const, pending: [], steps: 3, summary: '', compaction }, agent: 'a', tools: [] };
    expect(decodeHostState(encodeHostState(host))).toEqual(host);
    for (const bad of [{ ...compaction, turns: 0 }, { ...compaction, digest: 'not hex' }, { ...compaction, note: 7 }, 'everything']) {
      expect(() => decodeHostState(encodeHostState({ ...host, loop: { ...host.loop, compaction: bad as never } }))).toThrow(expect.objectContaining({ code: 'runtime/bad-state' }));
    }
  });
});

describe('a conversation past the context', () => {
  it('keeps answering with its oldest turns left out; the checkpoints keep the whole history and record the compaction', async () => {
    const watched = watch(small);
    const runtime = await AgentRuntime.create(createMemoryStore(), setup(watched.engine), { agent: assistant.id });
    const TURNS = 12;
    for (let i = 1; i <= TURNS; i++) {
      const events = await say(runtime, i);
      expect(events.filter((e) => e.type === 'step-failed')).toEqual([]);
      expect(replies(events), `turn ${i}`).toHaveLength(1);
    }
    // Every prompt fit the context with its reply's budget.
    expect(watched.prompts).toHaveLength(TURNS);
    for (const p of watched.prompts) expect(p.tokens + REPLY).toBeLessThanOrEqual(SMALL);
    // The whole conversation would not have: the agent, restored from the last checkpoint, still holds every turn.
    const whole = await agentMessagesAt(runtime, question(TURNS + 1));
    expect(whole.filter((m) => m.role === 'user').map((m) => m.content)).toEqual(Array.from({ length: TURNS + 1 }, (_, i) => question(i + 1)));
    expect((await preparePrompt(small, { messages: whole })).length).toBeGreaterThan(2 * SMALL);
    // The session's events keep every message and every reply.
    const events = await sessionEvents(runtime);
    expect(events.filter((e) => e.type === 'user').map((e) => (e as { text: string }).text)).toEqual(Array.from({ length: TURNS }, (_, i) => question(i + 1)));
    expect(events.filter((e) => e.type === 'generation' && e.tokens.length > 0)).toHaveLength(TURNS);
    // Compacted more than once, each time wider; the checkpoint's loop state holds the last, and the last prompt shows it.
    const compactions = events.flatMap((e) => (e.type === 'compaction' ? [e.turns] : []));
    expect(compactions.length).toBeGreaterThan(1);
    expect(compactions).toEqual([...compactions].sort((a, b) => a - b));
    const recorded = (await readHostState(runtime.session, runtime.head)).loop.compaction;
    expect(recorded).toEqual(runtime.loopState.compaction);
    expect(recorded?.turns).toBe(compactions.at(-1));
    const last = watched.prompts.at(-1)!.messages;
    expect(last[0]!.content).toMatch(new RegExp(`${compactionNote(recorded!.turns).replace(/[()]/g, '\\$&')}$`));
    expect(last.filter((m) => m.role === 'user')).toHaveLength(TURNS - recorded!.turns);
    // Until the first compaction every prompt held the whole conversation.
    const first = watched.prompts.findIndex((p) => p.messages[0]!.content.includes('left out'));
    expect(first).toBeGreaterThan(0);
    expect(watched.prompts.slice(0, first).map((p) => p.messages.filter((m) => m.role === 'user').length)).toEqual(Array.from({ length: first }, (_, i) => i + 1));
  });

  it('a reply cut after compaction and continued on an engine with another context size gives the ids of a run that never moved', async () => {
    const TURNS = 8;
    const unmoved = await AgentRuntime.create(createMemoryStore(), setup(small), { agent: assistant.id });
    for (let i = 1; i <= TURNS; i++) await say(unmoved, i);
    expect(unmoved.loopState.compaction, 'compacted before the turn that moves').toBeDefined();
    const conversation = await agentMessagesAt(unmoved, question(TURNS + 1));
    const whole = await say(unmoved, TURNS + 1);
    const reference = generated(whole);
    expect(reference.length).toBeGreaterThan(20);

    const store = createMemoryStore();
    const device = await AgentRuntime.create(store, setup(small), { agent: assistant.id });
    for (let i = 1; i <= TURNS; i++) await say(device, i);
    const cut = await say(device, TURNS + 1, 12);
    expect(cut.some((e) => e.type === 'paused')).toBe(true);
    const before = generated(cut);
    expect(before.length).toBeGreaterThanOrEqual(12);
    expect(before.length).toBeLessThan(reference.length);
    expect(device.loopState.cut).toBeDefined();

    // Moved: the checkpoint opened on another engine instance whose context is twice as large.
    const watched = watch(large);
    const cloud = await AgentRuntime.open(store, setup(watched.engine), device.session.id);
    const resumed = await turn(cloud, { type: 'resume' });
    expect([...before, ...generated(resumed)]).toEqual(reference);
    expect(replies(resumed)).toEqual(replies(whole));
    // The continuation ran on the prompt recorded with the cut, compacted for the device's context: its ids, then the reply's so far.
    const cutPrompt = device.loopState.cut!.prompt;
    if (!('messages' in cutPrompt)) throw new Error('the cut prompt is not messages');
    expect(cutPrompt.messages[0]!.content).toContain(device.loopState.compaction!.note);
    expect(watched.prompts[0]!.ids).toEqual([...(await preparePrompt(large, cutPrompt)), ...before]);
    // Fresh on the larger engine, the same conversation would have been compacted otherwise (so the test can fail).
    const fresh = await fitToContext(conversation, {
      room: LARGE - REPLY,
      count: async (messages) => (await preparePrompt(large, { messages })).length,
    });
    expect(fresh.messages).not.toEqual(cutPrompt.messages);
    // The next turn there keeps the recorded compaction while it fits: the model sees what it saw on the device.
    await say(cloud, TURNS + 2);
    const next = watched.prompts.at(-1)!.messages;
    expect(next[0]).toEqual(cutPrompt.messages[0]);
    expect(cloud.loopState.compaction).toEqual(device.loopState.compaction);
  });
});
