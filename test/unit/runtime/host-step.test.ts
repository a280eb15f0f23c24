/**
 * Host steps (RunInput `tools`): content a person adds goes through the agent's own tools as a step of the host's,
 * outside the agent's decisions — recorded as tool calls and results, checkpointed with the tools' state, carried
 * by a restore (so by a move) — with the real runtime, the `scribe` agent and `tally` tool fixtures, and the tiny
 * generated model (which a host step never calls).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { AgentLoop, agentOf, inProcessTool, instantiate, type HostCall } from '../../../src/core/runtime/index.ts';
import { AgentRuntime, type RuntimeEvent } from '../../../src/core/runtime/runtime.ts';
import { Session } from '../../../src/core/session/index.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { refusal } from '../../support/refusal.ts';
import { fixtures, loader, setupFor, tinyEngine, tinyModelFile, turn, type Fixtures } from '../../support/runtime-agent.ts';

let f: Fixtures;
let engine: Engine;

beforeAll(async () => {
  f = await fixtures();
  engine = await tinyEngine(await tinyModelFile());
}, 240_000);
afterAll(() => engine?.dispose());

const add = (title: string): HostCall => ({ tool: 'tally', args: JSON.stringify({ op: 'add', title, body: `${title} body` }) });

async function run(runtime: AgentRuntime, calls: HostCall[]): Promise<RuntimeEvent[]> {
  const events: RuntimeEvent[] = [];
  for await (const e of runtime.run({ type: 'tools', calls })) events.push(e);
  return events;
}

const codeOf = async (p: Promise<unknown>): Promise<string> => (await refusal(() => p)).code;

describe('host steps', () => {
  it('run the tools\' calls as one checkpointed step, leave the loop as it was, and come back with a restore', async () => {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const before = runtime.loopState;
    const events = await run(runtime, [add('harbour.md'), add('tides.md'), { tool: 'tally', args: JSON.stringify({ op: 'add' }) }]);
    expect(events.map((e) => e.type)).toEqual(['step', 'tool-call', 'tool-result', 'tool-call', 'tool-result', 'tool-call', 'tool-result', 'checkpoint']);
    expect(events[0]).toEqual({ type: 'step', step: before.steps + 1, input: 'host' });
    const results = events.flatMap((e) => (e.type === 'tool-result' ? [[e.callId, e.ok, e.output]] : []));
    expect(results).toEqual([[`host-${before.steps + 1}-1`, true, '{"id":1}'], [`host-${before.steps + 1}-2`, true, '{"id":2}'], [`host-${before.steps + 1}-3`, false, '"add" needs a "title".']]);
    // The loop itself is untouched: no input pending, the same status, one more step.
    expect(runtime.loopState).toEqual({ ...before, steps: before.steps + 1 });

    // The checkpoint holds the calls and results, and the tool's state: a runtime opened on the store has them.
    const session = await Session.open(store, runtime.session.id);
    const head = await session.checkpoint(await session.head());
    expect(head.events.filter((e) => e.type === 'tool-call').map((e) => e.type === 'tool-call' && JSON.parse(e.args).title)).toEqual(['harbour.md', 'tides.md', undefined]);
    await runtime.dispose();
    const reopened = await AgentRuntime.open(store, setupFor(f, engine), runtime.session.id);
    const listed = (await run(reopened, [{ tool: 'tally', args: '{"op":"list"}' }])).find((e) => e.type === 'tool-result');
    expect(listed).toMatchObject({ ok: true, output: '["1:harbour.md","2:tides.md"]' });

    // The agent then starts as usual and finds the content through its tool.
    const { replies } = await turn(reopened, 'file this', true);
    expect(replies.length).toBeGreaterThan(0);
    await reopened.dispose();
  });

  it('only reach the agent\'s own tools, within their schemas and the step\'s limits', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const events = await run(runtime, [{ tool: 'workspace', args: '{"op":"list"}' }, { tool: 'tally', args: '{"op":"shout"}' }, { tool: 'tally', args: 'not json' }]);
    const outputs = events.flatMap((e) => (e.type === 'tool-result' && !e.ok ? [e.output] : []));
    expect(outputs).toEqual([expect.stringMatching(/There is no tool "workspace"/), expect.stringMatching(/do not match its schema/), expect.stringMatching(/not valid JSON/)]);
    expect(await codeOf(run(runtime, []))).toBe('runtime/bad-input');
    expect(await codeOf(run(runtime, Array.from({ length: 501 }, (_, i) => add(`n${i}`))))).toBe('runtime/bad-input');
    expect(await codeOf(run(runtime, [{ tool: 'tally', args: JSON.stringify({ op: 'add', title: 't', body: 'x'.repeat(4 * 1024 * 1024) }) }]))).toBe('runtime/bad-input');
    await runtime.dispose();
  });

  it('wait for the agent\'s pending work, but are taken after it finished its task', async () => {
    const loop = new AgentLoop({ agent: agentOf(await instantiate(await loader(f)(f.ids.scribe), {})), tools: [await inProcessTool(await instantiate(await loader(f)(f.ids.tally), {}))], engine });
    loop.setState({ status: 'running', pending: [{ tag: 'user-message', val: 'waiting' }], steps: 4, summary: '' });
    const drain = async (): Promise<string[]> => {
      const types: string[] = [];
      for await (const e of loop.run({ type: 'tools', calls: [add('late')] })) types.push(e.type);
      return types;
    };
    expect(await codeOf(drain())).toBe('runtime/busy');
    loop.setState({ status: 'done', pending: [], steps: 5, summary: 'finished' });
    expect(await drain()).toEqual(['step', 'tool-call', 'tool-result']);
    expect(loop.state).toEqual({ status: 'done', pending: [], steps: 6, summary: 'finished' });
  });
});
