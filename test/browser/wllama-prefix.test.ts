/**
 * On the device, wllama has one sequence: a rollback or a fork of the session it last ran keeps the KV of the
 * longest common prefix of the rendered conversations (the agent worker keeps the engine across the session being
 * opened again), prefills only the rest, and gives the ids a fresh worker gives.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll, preparePrompt, type ChatMessage, type DoneEvent, type Engine } from '../../src/core/llm/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { openBrowserEngine } from '../../src/browser/llm/open-engine.ts';

const CONTEXT = 1024;
const model = new Blob([generateTinyModel({ ctx: CONTEXT })]);
let engine: Engine;
let cold: Engine;

beforeAll(async () => {
  const open = () => openBrowserEngine({ kind: 'wllama', model, contextSize: CONTEXT });
  [engine, cold] = await Promise.all([open(), open()]);
});
afterAll(async () => {
  await engine?.dispose();
  await cold?.dispose();
});

const commonPrefix = (a: readonly number[], b: readonly number[]) => {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
};

/** What the engine's sequence holds after a generation: its prompt and every generated id but the last. */
let held: number[] = [];
async function run(messages: ChatMessage[]): Promise<{ prompt: number[]; done: DoneEvent }> {
  const prompt = await preparePrompt(engine, { messages });
  const done = await generateAll(engine, { prompt: { messages }, maxTokens: 12 });
  const expected = Math.min(commonPrefix(prompt, held), prompt.length - 1);
  expect(done.stats.cachedTokens).toBe(expected);
  // The same prompt on a worker that holds nothing of it (an unrelated prompt without BOS ran last).
  await generateAll(cold, { prompt: { tokens: [300, 301, 302] }, maxTokens: 1 });
  const unshared = await generateAll(cold, { prompt: { messages }, maxTokens: 12 });
  expect(unshared.stats.cachedTokens).toBe(0);
  expect(done.tokens).toEqual(unshared.tokens);
  held = [...prompt, ...done.tokens.slice(0, -1)];
  return { prompt, done };
}

const system: ChatMessage = { role: 'system', content: 'You are a careful assistant who answers briefly and checks every step of the work twice before replying.' };

describe('wllama keeps the common prefix across a session rollback and fork', () => {
  it('a rollback and a fork prefill only after the point where they part from what ran last', async () => {
    const first: ChatMessage[] = [system, { role: 'user', content: 'Tell me about the ferry across the river and when it leaves.' }];
    const a = await run(first);
    const reply: ChatMessage = { role: 'assistant', content: a.done.text };
    const turn = await run([...first, reply, { role: 'user', content: 'And when does the last one come back?' }]);
    // The next turn re-renders the reply as text: everything before it is reused at least.
    expect(turn.done.stats.cachedTokens).toBeGreaterThanOrEqual(a.prompt.length);
    // Rolled back to before the second question, asked another way.
    const rollback = await run([...first, reply, { role: 'user', content: 'Is there a night ferry?' }]);
    expect(rollback.done.stats.cachedTokens).toBeGreaterThanOrEqual(a.prompt.length);
    // A fork from the first turn with another first question: only the system prompt is shared.
    const fork = await run([system, { role: 'user', content: 'What does a ticket cost?' }]);
    const systemOnly = commonPrefix(fork.prompt, a.prompt);
    expect(fork.done.stats.cachedTokens).toBe(systemOnly);
    expect(systemOnly).toBeGreaterThan(10);
  });

  it('a prompt that shares nothing with the cache, not even BOS, starts clean', async () => {
    // Nothing of the cache is reused: the engine clears the whole sequence before the new prompt.
    const first = await generateAll(engine, { prompt: { tokens: [310, 311, 312, 313] }, maxTokens: 4 });
    expect(first.stats.cachedTokens).toBe(0);
    held = [310, 311, 312, 313, ...first.tokens.slice(0, -1)];
    await run([system, { role: 'user', content: 'Where is the ferry now?' }]);
  });
});
