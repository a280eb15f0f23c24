/**
 * The `podcast` agent in the real action loop with the real docs tool and a scripted engine (tests of agent logic
 * only): sources go into docs, the model searches them, an invalid outline and a one-speaker segment are sent back
 * with the problem, and the result is a multi-speaker script with every segment.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AgentLoop, type ToolHost } from '../../../src/core/runtime/index.ts';
import type { ChatMessage } from '../../../src/core/llm/messages.ts';
import { firstUserText, lastText, ScriptedEngine, toolCall } from '../../support/scripted-engine.ts';
import { agent, BUILD_TIMEOUT, collect, replies, tool, toolCalls } from './built.ts';

let tools: ToolHost[];

beforeAll(async () => {
  tools = await Promise.all(['docs', 'notes'].map(tool));
}, BUILD_TIMEOUT);

const OUTLINE = {
  title: 'Crossing the Water',
  segments: [
    { title: 'Why ferries still matter', summary: 'Opening', points: ['70,000 riders a day'] },
    { title: 'Going electric', summary: 'Battery ferries', points: ['charging at the dock'] },
    { title: 'What comes next', summary: 'Closing', points: [] },
  ],
};

/** The model: answers each phase by what the agent asked, with one bad answer per kind to exercise the checks. */
function script(messages: readonly ChatMessage[]): string {
  const task = firstUserText(messages);
  const last = lastText(messages);
  const turns = messages.filter((m) => m.role === 'assistant').length;
  if (task.startsWith('Plan a podcast episode')) {
    if (turns === 0) return toolCall('docs', { op: 'search', query: 'electric ferry charging' });
    if (turns === 1) return last.includes('charge their batteries') ? 'Here is my plan: {"title": "Crossing", segments: [}' : `search failed: ${last}`;
    return last.includes('does not parse') ? `\`\`\`json\n${JSON.stringify(OUTLINE)}\n\`\`\`` : `no correction: ${last}`;
  }
  const seg = /Now write segment (\d) of 3/.exec(task);
  if (seg) {
    const n = Number(seg[1]);
    // Segment 2's first draft is a monologue; the agent asks for a conversation.
    if (n === 2 && turns === 0) return 'Sam: Electric ferries charge at the dock.\nSam: They are quiet.\nSam: And cheap to run.\nSam: Norway has many.';
    if (n === 2 && !last.includes('at least two of Alex, Sam must speak')) return `no correction: ${last}`;
    return [`Alex: Segment ${n}, let us begin.`, `Sam: Here is the substance of segment ${n}.`, 'Narrator (off): this line has no known speaker.', `**Alex:** And a question about part ${n}?`, `Sam (laughs): An answer about part ${n}.`].join('\n');
  }
  throw new Error(`unexpected request: ${task.slice(0, 200)}`);
}

describe('podcast agent', () => {
  it('turns a topic and sources into a multi-speaker script, segment by segment', async () => {
    const engine = new ScriptedEngine(script);
    const loop = new AgentLoop({ agent: await agent('podcast'), tools, engine });
    const task = {
      topic: 'Ferries in modern cities',
      sources: [
        { title: 'Staten Island Ferry', text: 'The Staten Island Ferry carries about 70,000 passengers a day between Manhattan and Staten Island.' },
        { title: 'Electric ferries', text: 'Electric ferries charge their batteries at the dock while passengers board. Norway runs more than seventy.' },
      ],
    };
    const events = await collect(loop, { type: 'start', task: JSON.stringify(task) });

    // The agent added both sources to docs; the model searched them.
    expect(toolCalls(events)).toEqual([
      { tool: 'docs', args: { op: 'add', title: 'Staten Island Ferry', text: task.sources[0]!.text } },
      { tool: 'docs', args: { op: 'add', title: 'Electric ferries', text: task.sources[1]!.text } },
      { tool: 'docs', args: { op: 'search', query: 'electric ferry charging' } },
    ]);
    expect(engine.requests[0]![1]!.content).toContain('Source 2: "Electric ferries" — searchable in docs as document 2');

    const [text] = replies(events);
    expect(replies(events)).toHaveLength(1);
    expect(text).toMatch(/^# Crossing the Water\n/);
    expect(text).toContain('- **Alex** — host');
    for (const [i, s] of OUTLINE.segments.entries()) expect(text).toContain(`## ${i + 1}. ${s.title}`);
    for (const n of [1, 2, 3]) {
      expect(text).toContain(`**Alex:** Segment ${n}, let us begin.`);
      expect(text).toContain(`**Sam:** An answer about part ${n}.`);
    }
    expect(text).not.toContain('Narrator');
    const done = events.at(-1);
    expect(done).toMatchObject({ type: 'done' });
    expect(JSON.parse((done as { summary: string }).summary)).toEqual({ title: 'Crossing the Water', segments: 3, lines: 12, speakers: ['Alex', 'Sam'] });
    expect(loop.state.status).toBe('done');
  });

  it('with the topic alone, draws on the sources the person added to docs', async () => {
    const engine = new ScriptedEngine(script);
    const own = await Promise.all(['docs', 'notes'].map(tool));
    const loop = new AgentLoop({ agent: await agent('podcast'), tools: own, engine });
    // Added by the host before the topic, as the app does (a host step of docs adds).
    await collect(loop, { type: 'tools', calls: [
      { tool: 'docs', args: JSON.stringify({ op: 'add', title: 'Staten Island Ferry', text: 'The Staten Island Ferry carries about 70,000 passengers a day.' }) },
      { tool: 'docs', args: JSON.stringify({ op: 'add', title: 'Electric ferries', text: 'Electric ferries charge their batteries at the dock.', source: 'https://example.org/e-ferries' }) },
    ] });
    const events = await collect(loop, { type: 'user', text: 'Ferries in modern cities' });
    expect(toolCalls(events)).toEqual([{ tool: 'docs', args: { op: 'list' } }, { tool: 'docs', args: { op: 'search', query: 'electric ferry charging' } }]);
    const plan = engine.requests[0]![1]!.content;
    expect(plan).toContain('Plan a podcast episode about: Ferries in modern cities');
    expect(plan).toContain('Source 1: "Staten Island Ferry" — searchable in docs as document 1\nSource 2: "Electric ferries" — searchable in docs as document 2');
    expect(replies(events)[0]).toMatch(/^# Crossing the Water\n/);
  });

  it('fails clearly when the model never produces a valid outline', async () => {
    const engine = new ScriptedEngine(() => 'I would rather not plan anything.');
    const loop = new AgentLoop({ agent: await agent('podcast'), tools, engine });
    const events = await collect(loop, { type: 'start', task: 'Lighthouses' });
    expect(replies(events)).toEqual(['I could not write the outline: The answer contains no JSON.']);
    expect(events.at(-1)).toMatchObject({ type: 'done', summary: 'failed: The answer contains no JSON.' });
    expect(engine.requests).toHaveLength(4);
  });
});
