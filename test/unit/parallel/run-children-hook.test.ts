/**
 * The runtime's `runChildren` hook (RuntimeSetup): when a host sets it, a step's forked children go to it — with
 * the parent's components and session — instead of running one by one in the runtime; its results are the step's
 * `children` and reach the agent in order. A hook that fails, or breaks its contract (a result per child, same ids,
 * same order), fails the step like a tool call that could not complete: the session is restored and goes on.
 * The `scribe` fixture agent with the `tally` tool on the tiny generated model.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { hereChildren } from '../../../src/core/parallel/index.ts';
import { HERE, type ChildProgress } from '../../../src/core/runtime/index.ts';
import type { ChildResult, SubTask } from '../../../src/core/runtime/index.ts';
import { AgentRuntime, type ChildContext, type RunChildren } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { agentRig, setupFor, turn, type Fixtures } from '../../support/runtime-agent.ts';

let f: Fixtures;
let engine: Engine;

beforeAll(async () => void ({ f, engine } = await agentRig()), 240_000);

afterAll(async () => {
  await engine?.dispose();
});

async function parentWith(runChildren: RunChildren): Promise<AgentRuntime> {
  return AgentRuntime.create(createMemoryStore(), setupFor(f, engine, { runChildren }), { agent: f.ids.scribe, tools: [f.ids.tally] });
}

describe('the runChildren hook', () => {
  test('forked children go to the hook with the parent\'s components and session; its results reach the agent in order', async () => {
    const calls: { tasks: readonly SubTask[]; context: ChildContext }[] = [];
    const runtime = await parentWith(async (tasks, context) => {
      calls.push({ tasks, context });
      return tasks.map((t): ChildResult => ({ id: t.id, ok: t.task !== 'fails', output: t.task.toUpperCase() }));
    });
    const { replies, events } = await turn(runtime, '/fork alpha|fails|gamma', true);
    expect(calls).toEqual([{ tasks: [{ id: 'child0', task: 'alpha' }, { id: 'child1', task: 'fails' }, { id: 'child2', task: 'gamma' }], context: { agent: f.ids.scribe, tools: [f.ids.tally], parent: runtime.session.id, private: false, localLoop: expect.any(Function) } }]);
    expect(events.find((e) => e.type === 'children')).toEqual({ type: 'children', results: [{ id: 'child0', ok: true, output: 'ALPHA' }, { id: 'child1', ok: false, output: 'FAILS' }, { id: 'child2', ok: true, output: 'GAMMA' }] });
    expect(replies).toEqual(['child0=ALPHA; child1=failed; child2=GAMMA']);
    // The step that forked is checkpointed like any other.
    expect(events.filter((e) => e.type === 'checkpoint').length).toBeGreaterThan(0);
    await runtime.dispose();
  });

  test('without a hook the agent is told its children cannot run here, and the session goes on', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine, { runChildren: undefined }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const { events } = await turn(runtime, '/fork alpha|gamma', true);
    expect(events.find((e) => e.type === 'children')).toEqual({ type: 'children', results: [{ id: 'child0', ok: false, output: 'This host cannot run child agents.' }, { id: 'child1', ok: false, output: 'This host cannot run child agents.' }] });
    expect(events.filter((e) => e.type === 'checkpoint').length).toBeGreaterThan(0);
    await runtime.dispose();
  });

  test('a hook with nowhere else to run them hands them to hereChildren: they run in this runtime, the step paying for them', async () => {
    const plain = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine, {}), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const expected = await turn(plain, '/fork alpha|gamma', true);
    await plain.dispose();
    let handedBack = 0;
    const runtime = await parentWith(async (tasks, context, signal, spent) => {
      handedBack += tasks.length;
      return hereChildren(() => {})(tasks, context, signal, spent);
    });
    const { replies, events } = await turn(runtime, '/fork alpha|gamma', true);
    expect(handedBack).toBe(2);
    expect(events.find((e) => e.type === 'children')).toEqual(expected.events.find((e) => e.type === 'children'));
    expect(replies).toEqual(expected.replies);
    // The children's generations were this step's, as they are without a hook: the same tokens counted.
    const tokens = async (r: AgentRuntime) => (await r.session.checkpoint(await r.session.head())).counters.tokens;
    expect(await tokens(runtime)).toBe(await tokens(plain));
    await runtime.dispose();
  });

  test('hereChildren runs them here as without a hook, reporting that they do and each one\'s end', async () => {
    const plain = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine, {}), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const expected = await turn(plain, '/fork alpha|gamma|delta', true);
    await plain.dispose();
    const progress: ChildProgress[] = [];
    const runtime = await parentWith(hereChildren((p) => progress.push(p)));
    const { replies, events } = await turn(runtime, '/fork alpha|gamma|delta', true);
    expect(events.find((e) => e.type === 'children')).toEqual(expected.events.find((e) => e.type === 'children'));
    expect(replies).toEqual(expected.replies);
    expect(progress.map((p) => (p.type === 'child-done' ? [p.child, p.node, p.ok] : p))).toEqual([
      { type: 'here', children: 3, reason: '' },
      ['child0', HERE, true],
      ['child1', HERE, true],
      ['child2', HERE, true],
    ]);
    await runtime.dispose();
  });

  test('a hook that cannot run the children fails the step; the session is restored and goes on', async () => {
    let fail = true;
    const runtime = await parentWith(async (tasks) => {
      if (fail) throw new Error('no node of this space can take the children');
      return tasks.map((t) => ({ id: t.id, ok: true, output: 'ran' }));
    });
    const before = runtime.head;
    const { events } = await turn(runtime, '/fork a|b', true);
    const failed = events.find((e) => e.type === 'step-failed');
    expect(failed).toMatchObject({ type: 'step-failed', error: { code: 'runtime/step-failed' }, restoredTo: before });
    expect((failed as { error: { message: string } }).error.message).toMatch(/its 2 forked children could not run \(no node of this space can take the children\)/);
    expect(events.some((e) => e.type === 'children')).toBe(false);
    fail = false;
    expect((await turn(runtime, '/fork c')).replies).toEqual(['child0=ran']);
    await runtime.dispose();
  });

  test('a hook that breaks its contract (missing or reordered results) fails the step, saying how', async () => {
    const answers: ((tasks: readonly SubTask[]) => ChildResult[])[] = [
      (tasks) => tasks.slice(1).map((t) => ({ id: t.id, ok: true, output: '' })),
      (tasks) => [...tasks].reverse().map((t) => ({ id: t.id, ok: true, output: '' })),
    ];
    const messages: string[] = [];
    for (const answer of answers) {
      const runtime = await parentWith(async (tasks) => answer(tasks));
      const { events } = await turn(runtime, '/fork a|b', true);
      const failed = events.find((e) => e.type === 'step-failed') as { error: { code: string; message: string } } | undefined;
      expect(failed?.error.code).toBe('runtime/step-failed');
      messages.push(failed!.error.message);
      await runtime.dispose();
    }
    expect(messages[0]).toMatch(/broke its contract \(1 results for 2 children\)/);
    expect(messages[1]).toMatch(/broke its contract \(result 0 is not child "child0"'s\)/);
  });
});
