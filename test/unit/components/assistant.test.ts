/**
 * The `assistant` agent in the real action loop with real tool components and a scripted engine (tests of agent
 * logic only): it calls a tool, feeds the result back, replies; a malformed call goes back as an error observation.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AgentLoop, type ToolHost } from '../../../src/core/runtime/index.ts';
import { lastText, ScriptedEngine, toolCall } from '../../support/scripted-engine.ts';
import { agent, BUILD_TIMEOUT, collect, replies, tool, toolCalls } from './built.ts';

let tools: ToolHost[];

beforeAll(async () => {
  tools = await Promise.all(['workspace', 'notes', 'js', 'docs'].map(tool));
}, BUILD_TIMEOUT);

describe('assistant agent', () => {
  it('uses a tool, answers from its result, and recovers from a malformed call', async () => {
    const engine = new ScriptedEngine((messages, i) => {
      const last = lastText(messages);
      switch (i) {
        case 0: return `I will compute it.\n${toolCall('js', { op: 'eval', code: '[3, 4, 5].reduce((a, b) => a * b)' })}`;
        case 1: return last.includes('"result":"60"') ? 'The product is 60.' : `unexpected observation: ${last}`;
        // Second turn: a call with broken JSON, then the corrected call once told what was wrong.
        case 2: return '<tool_call>{"name": "notes", "arguments": {op: "add"}}</tool_call>';
        case 3: return last.includes('could not be run') ? toolCall('notes', { op: 'add', title: 'Product', body: '60' }) : `no error observation: ${last}`;
        case 4: return last.includes('"id":1') ? 'Saved as note 1.' : `unexpected observation: ${last}`;
        default: throw new Error(`unexpected request ${i}`);
      }
    });
    const loop = new AgentLoop({ agent: await agent('assistant'), tools, engine });

    const first = await collect(loop, { type: 'start', task: 'What is 3 × 4 × 5?' });
    expect(replies(first)).toEqual(['The product is 60.']);
    expect(toolCalls(first)).toEqual([{ tool: 'js', args: { op: 'eval', code: '[3, 4, 5].reduce((a, b) => a * b)' } }]);
    expect(first.at(-1)).toEqual({ type: 'idle' });
    // The loop put the tool instructions into the agent's system message; the agent kept the whole conversation.
    expect(engine.requests[0]![0]!.content).toMatch(/^You are Ferry's assistant[\s\S]*You can call these tools:[\s\S]*"name":"js"/);
    expect(engine.requests[1]!.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);

    const second = await collect(loop, { type: 'user', text: 'Save that in my notes.' });
    expect(replies(second)).toEqual(['Saved as note 1.']);
    expect(engine.requests[3]!.at(-1)!.content).toMatch(/^Your tool call could not be run:\n- tool call #1: not valid JSON/);
    expect(toolCalls(second)).toEqual([{ tool: 'notes', args: { op: 'add', title: 'Product', body: '60' } }]);
    expect(engine.requests).toHaveLength(5);
  });

  it('a message sent during a turn is answered after it, in order', async () => {
    const assistant = await agent('assistant');
    // Driven step by step: the second message arrives while the first generation is outstanding.
    const a1 = assistant.step({ tag: 'start', val: 'first' });
    expect(a1.map((a) => a.tag)).toEqual(['generate']);
    expect(assistant.step({ tag: 'user-message', val: 'second' })).toEqual([]);
    const a2 = assistant.step({ tag: 'generation-result', val: { text: 'Answer to: first', finishReason: 'stop' } });
    expect(a2.map((a) => a.tag)).toEqual(['reply', 'generate']);
    expect(a2[0]).toEqual({ tag: 'reply', val: 'Answer to: first' });
    const messages = (a2[1] as { val: { messages: { content: string }[] } }).val.messages;
    expect(messages.at(-1)!.content).toBe('second');
  });
});
