/**
 * The `survey` agent in the real action loop with the real docs tool and a scripted engine (tests of agent logic
 * only): it adds the sources to docs, forks one child per source (the same component, started with a
 * source-notes task), merges the children's notes into the outline, writes sections whose citations are checked,
 * and ends with the bibliography of what it cited.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { AgentLoop, addUsage, type LoopEvent, type StepRecord, type ToolHost } from '../../../src/core/runtime/index.ts';
import { childrenOneByOne } from '../../../src/core/parallel/index.ts';
import type { ChatMessage } from '../../../src/core/llm/messages.ts';
import { firstUserText, lastText, ScriptedEngine, toolCall } from '../../support/scripted-engine.ts';
import { agent, BUILD_TIMEOUT, collect, replies, tool, toolCalls } from './built.ts';

let tools: ToolHost[];

beforeAll(async () => {
  tools = await Promise.all(['docs', 'notes'].map(tool));
}, BUILD_TIMEOUT);

const SOURCES = [
  { title: 'Notes on the Analytical Engine', authors: ['Ada Lovelace'], year: 1843, text: 'The engine weaves algebraic patterns as the loom weaves flowers. It could compute Bernoulli numbers.' },
  { title: 'On Computable Numbers', authors: ['Alan Turing'], year: 1936, text: 'A machine with a finite table of instructions can compute any computable sequence. The halting problem is undecidable.' },
  { title: 'First Draft of a Report on the EDVAC', authors: 'John von Neumann', year: 1945, url: 'https://example.org/edvac', text: 'Programs are stored in the same memory as data. The stored-program design separates memory, control and arithmetic.' },
];

function script(messages: readonly ChatMessage[]): string {
  const task = firstUserText(messages);
  const last = lastText(messages);
  const turns = messages.filter((m) => m.role === 'assistant').length;
  const child = /^The survey is about: .*\n\nSource \[(\d)\]: "([^"]+)"/s.exec(task);
  if (child) {
    return `\`\`\`json\n${JSON.stringify({ summary: `Notes on ${child[2]}.`, key_points: [`point of source ${child[1]}`], methods: 'analysis', findings: `finding ${child[1]}`, limitations: '' })}\n\`\`\``;
  }
  if (task.startsWith('Plan a survey about')) {
    // First outline cites a source that does not exist; the agent sends it back.
    if (turns === 0) return JSON.stringify({ title: 'Early Computing', sections: [{ heading: 'Machines', sources: [1, 7] }] });
    if (!last.includes('sources are numbered 1 to 3')) return `no correction: ${last}`;
    return `\`\`\`json\n${JSON.stringify({ title: 'Early Computing', sections: [
      { heading: 'Mechanical and theoretical machines', summary: 'From the loom to Turing', sources: [1, 2] },
      { heading: 'The stored program', summary: 'Von Neumann', sources: [3] },
    ] })}\n\`\`\``;
  }
  if (task.includes('Write section 1')) {
    if (turns === 0) return toolCall('docs', { op: 'search', query: 'Bernoulli numbers' });
    return last.includes('Bernoulli') ? 'Lovelace saw the engine computing Bernoulli numbers [1], while Turing defined what any machine can compute [2]. Together they framed computing as symbol manipulation [1, 2].' : `no search result: ${last}`;
  }
  if (task.includes('Write section 2')) {
    if (turns === 0) return 'The stored-program design keeps programs in memory with the data.';
    return last.includes('Cite the sources you use as [n]') ? 'Von Neumann kept programs in the same memory as data [3], which every later design followed.' : `no correction: ${last}`;
  }
  throw new Error(`unexpected request: ${task.slice(0, 200)}`);
}

describe('survey agent', () => {
  it('forks a child per source, merges their notes, and drafts cited sections with a bibliography', async () => {
    const engine = new ScriptedEngine(script);
    const childEvents: [string, LoopEvent][] = [];
    const runChildren = childrenOneByOne(async (usage) => new AgentLoop({ agent: await agent('survey'), tools, engine, afterStep: async (r) => addUsage(usage, r.usage) }), (id, e) => childEvents.push([id, e]));
    const records: StepRecord[] = [];
    const loop = new AgentLoop({ agent: await agent('survey'), tools, engine, runChildren, afterStep: async (r) => void records.push(r) });
    const events = await collect(loop, { type: 'start', task: JSON.stringify({ topic: 'the origins of computing', sources: SOURCES }) });

    // Sources into docs (by the agent), a search by the model while writing section 1.
    expect(toolCalls(events).map((c) => `${c.tool}:${c.args.op}`)).toEqual(['docs:add', 'docs:add', 'docs:add', 'docs:search']);
    // One child per source, each a separate agent run that ended with its notes.
    const children = events.find((e) => e.type === 'children') as Extract<LoopEvent, { type: 'children' }>;
    expect(children.results.map((r) => [r.id, r.ok])).toEqual([['source-1', true], ['source-2', true], ['source-3', true]]);
    expect(JSON.parse(children.results[1]!.output)).toEqual({ index: 2, notes: { summary: 'Notes on On Computable Numbers.', keyPoints: ['point of source 2'], methods: 'analysis', findings: 'finding 2', limitations: '' } });
    expect(new Set(childEvents.filter(([, e]) => e.type === 'done').map(([id]) => id))).toEqual(new Set(['source-1', 'source-2', 'source-3']));
    // The step that forked them pays for what they generated (a paid worker prices a step by its usage).
    const childTokens = childEvents.reduce((n, [, e]) => n + (e.type === 'generation' ? e.tokens.length : 0), 0);
    expect(childTokens).toBeGreaterThan(0);
    const forkStep = records.find((r) => r.actions.some((a) => a.tag === 'fork-children'))!;
    expect(forkStep.usage.outputTokens).toBe(forkStep.tokens + childTokens);
    // The parent's outline prompt carries every child's notes.
    const outlinePrompt = engine.requests.find((r) => firstUserText(r).startsWith('Plan a survey'))!;
    for (const s of SOURCES) expect(firstUserText(outlinePrompt)).toContain(`Summary: Notes on ${s.title}.`);

    const [draft] = replies(events);
    expect(replies(events)).toHaveLength(1);
    expect(draft).toMatch(/^# Early Computing\n\n## 1\. Mechanical and theoretical machines\n\nLovelace saw/);
    expect(draft).toContain('## 2. The stored program\n\nVon Neumann kept programs in the same memory as data [3]');
    expect(draft).toContain('## References\n\n[1] Ada Lovelace (1843). Notes on the Analytical Engine.\n[2] Alan Turing (1936). On Computable Numbers.\n[3] John von Neumann (1945). First Draft of a Report on the EDVAC. https://example.org/edvac\n');
    // The draft is part of the session (the Draft panel reads it from there): its step records it as a reply.
    expect(records.flatMap((r) => r.events.flatMap((e) => (e.type === 'reply' ? [e.text] : [])))).toEqual([draft]);
    const done = events.at(-1) as Extract<LoopEvent, { type: 'done' }>;
    expect(JSON.parse(done.summary)).toEqual({ title: 'Early Computing', sections: 2, sources: 3, cited: 3, unread: 0 });
  });

  it('drafts from the sources it could read when a child fails', async () => {
    const engine = new ScriptedEngine(script);
    // A host whose child runs fail for source 2 (e.g. its node went away).
    const childTools = await Promise.all(['docs', 'notes'].map(tool));
    const real = childrenOneByOne(async () => new AgentLoop({ agent: await agent('survey'), tools: childTools, engine }));
    const runChildren: typeof real = async (tasks, signal, spent) => {
      const ran = await real(tasks.filter((t) => t.id !== 'source-2'), signal, spent);
      return tasks.map((t) => ran.find((r) => r.id === t.id) ?? { id: t.id, ok: false, output: 'node lost' });
    };
    const loop = new AgentLoop({ agent: await agent('survey'), tools: childTools, engine, runChildren });
    const events = await collect(loop, { type: 'start', task: JSON.stringify({ topic: 'the origins of computing', sources: SOURCES }) });
    const outlinePrompt = firstUserText(engine.requests.find((r) => firstUserText(r).startsWith('Plan a survey'))!);
    expect(outlinePrompt).toContain('[2] On Computable Numbers — Alan Turing (1936)\n(no notes: reading this source failed)');
    const done = events.at(-1) as Extract<LoopEvent, { type: 'done' }>;
    expect(JSON.parse(done.summary)).toMatchObject({ sections: 2, unread: 1 });
  });

  it('with the topic alone, reads the sources the person added to docs: lists them, reads each, and surveys them', async () => {
    const engine = new ScriptedEngine(script);
    const own = await Promise.all(['docs', 'notes'].map(tool));
    const runChildren = childrenOneByOne(async () => new AgentLoop({ agent: await agent('survey'), tools: own, engine }));
    const loop = new AgentLoop({ agent: await agent('survey'), tools: own, engine, runChildren });
    // Added by the host before the topic, as the app does (a host step of docs adds).
    await collect(loop, { type: 'tools', calls: SOURCES.map((s) => ({ tool: 'docs', args: JSON.stringify({ op: 'add', title: s.title, text: s.text, ...(s.url ? { source: s.url } : {}) }) })) });
    const events = await collect(loop, { type: 'user', text: 'the origins of computing' });
    expect(toolCalls(events).map((c) => `${c.tool}:${c.args.op}:${c.args.doc ?? ''}`)).toEqual(['docs:list:', 'docs:get:1', 'docs:get:2', 'docs:get:3', 'docs:search:']);
    // Each child read its source's text, as docs holds it.
    const children = engine.requests.map(firstUserText).filter((t) => t.startsWith('The survey is about: the origins of computing'));
    expect(children).toHaveLength(3);
    for (const [i, s] of SOURCES.entries()) expect(children[i]).toContain(`Source [${i + 1}]: "${s.title}"\n\n${s.text}`);
    const [draft] = replies(events);
    expect(draft).toMatch(/^# Early Computing\n/);
    expect(draft).toContain('## References\n\n[1] Notes on the Analytical Engine.\n[2] On Computable Numbers.\n[3] First Draft of a Report on the EDVAC. https://example.org/edvac\n');
  });

  it('refuses a task without sources, given or added, with a clear reply', async () => {
    const loop = new AgentLoop({ agent: await agent('survey'), tools: await Promise.all(['docs', 'notes'].map(tool)), engine: ScriptedEngine.sequence([]) });
    const events = await collect(loop, { type: 'start', task: 'Survey the history of ferries' });
    expect(toolCalls(events)).toEqual([{ tool: 'docs', args: { op: 'list' } }]);
    expect(replies(events)).toEqual(['The agent could not go on: A survey needs sources: add files, pasted text or web pages with "Add sources" (the Draft tab), then send the topic again — or give "sources" in the task as a list of texts or {title, text, authors?, year?, url?}.']);
    const empty = await collect(loop, { type: 'user', text: JSON.stringify({ topic: 'ferries', sources: [] }) });
    expect(replies(empty)).toEqual([expect.stringMatching(/A survey needs sources/)]);
  });
});
