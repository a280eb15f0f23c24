import { describe, expect, it } from 'vitest';
import { FerryError, isFerryError } from '../../../src/core/errors.ts';
import {
  VirtualClock,
  planProportional,
  runParallel,
  splitJob,
  startParallel,
  type ParallelEvent,
  type ParallelNode,
  type ParallelTask,
} from '../../../src/core/parallel/index.ts';

interface SimNode extends ParallelNode {
  /** Real speed (tokens/s) in the simulation; `speed` is what the scheduler was told. */
  readonly actual: number;
}

const tasksOf = (sizes: number[]): ParallelTask<number>[] => sizes.map((tokens, i) => ({ id: `t${i}`, tokens, input: i }));

/** runOn for the virtual clock: a task takes tokens / actual speed, and returns its input (to check merge order). */
function simRun(clock: VirtualClock, log: string[] = []) {
  return async (node: SimNode, task: ParallelTask<number>, signal: AbortSignal): Promise<string> => {
    await clock.sleep((task.tokens / node.actual) * 1000, signal);
    log.push(`${node.id}:${task.id}`);
    return `result-${task.input}`;
  };
}

describe('splitJob and planProportional', () => {
  it('groups context items into order-preserving sub-contexts under the token limit', () => {
    const items = [3, 4, 2, 9, 1, 1].map((tokens, i) => ({ id: `src${i}`, tokens, value: i }));
    const parts = splitJob(items, 8);
    expect(parts.map((p) => p.input.map((x) => x.value))).toEqual([[0, 1], [2], [3], [4, 5]]);
    expect(parts.map((p) => p.tokens)).toEqual([7, 2, 9, 2]);
    expect(parts.flatMap((p) => p.input.map((x) => x.id))).toEqual(items.map((x) => x.id));
    expect(() => splitJob([{ id: 'a', tokens: 1, value: 0 }, { id: 'a', tokens: 1, value: 0 }], 8)).toThrow(/appears twice/);
  });

  it('splits in proportion to measured speed', () => {
    const plan = planProportional(tasksOf(Array(12).fill(1000)), [
      { id: 'slow', speed: 10 },
      { id: 'mid', speed: 20 },
      { id: 'fast', speed: 30 },
    ]);
    expect(plan.get('slow')).toHaveLength(2);
    expect(plan.get('mid')).toHaveLength(4);
    expect(plan.get('fast')).toHaveLength(6);
    expect([...plan.values()].flat().sort((a, b) => a - b)).toEqual([...Array(12).keys()]);
  });
});

describe('runParallel', () => {
  it('merges results in task order, each exactly once', async () => {
    const clock = new VirtualClock();
    const nodes: SimNode[] = [{ id: 'a', speed: 10, actual: 10 }, { id: 'b', speed: 30, actual: 30 }];
    const out = await clock.run(runParallel({ tasks: tasksOf([500, 100, 900, 300, 50, 700]), nodes, runOn: simRun(clock), now: clock.now }));
    expect(out.results).toEqual([0, 1, 2, 3, 4, 5].map((i) => `result-${i}`));
    expect(out.ranOn.every((n) => n === 'a' || n === 'b')).toBe(true);
  });

  it('reports its plan before anything starts, and each node starts with the head of its planned queue', async () => {
    const clock = new VirtualClock();
    // Three slots at 732 tok/s and one at 259 (a cloud worker's lanes and a laptop): six equal tasks all go to the
    // fast slots, two each, and the slow one, planned none, never steals (it would finish later than they do).
    const nodes: SimNode[] = [0, 1, 2].map((k): SimNode => ({ id: `cloud#${k}`, speed: 732, actual: 732 })).concat({ id: 'laptop', speed: 259, actual: 259 });
    const events: ParallelEvent[] = [];
    const out = await clock.run(runParallel({ tasks: tasksOf(Array(6).fill(300)), nodes, runOn: simRun(clock), now: clock.now, onEvent: (e) => events.push(e) }));
    expect(events[0]).toEqual({ type: 'plan', queues: { 'cloud#0': ['t0', 't3'], 'cloud#1': ['t1', 't4'], 'cloud#2': ['t2', 't5'], laptop: [] } });
    const plan = events[0]!.type === 'plan' ? events[0]!.queues : {};
    const firstStarts = events.filter((e): e is Extract<ParallelEvent, { type: 'start' }> => e.type === 'start').slice(0, 3);
    expect(firstStarts.map((e) => [e.node, e.task])).toEqual(Object.entries(plan).filter(([, q]) => q.length > 0).map(([id, q]) => [id, q[0]]));
    expect(out.ranOn.filter((n) => n === 'laptop')).toEqual([]);
  });

  it('work stealing finishes sooner than the static split when one node is slower than measured', async () => {
    const nodes: SimNode[] = [
      { id: 'a', speed: 100, actual: 100 },
      { id: 'b', speed: 100, actual: 100 },
      { id: 'slow', speed: 100, actual: 20 }, // measured before it got busy: now 5x slower
    ];
    const tasks = tasksOf(Array.from({ length: 12 }, (_, i) => 1000 + 100 * (i % 4)));
    const time = async (steal: boolean) => {
      const clock = new VirtualClock();
      const out = await clock.run(runParallel({ tasks, nodes, runOn: simRun(clock), now: clock.now, steal }));
      return { ms: clock.now(), steals: out.steals, results: out.results };
    };
    const fixed = await time(false);
    const stealing = await time(true);
    expect(fixed.steals).toBe(0);
    expect(stealing.steals).toBeGreaterThan(0);
    expect(stealing.ms).toBeLessThan(fixed.ms * 0.75);
    expect(stealing.results).toEqual(fixed.results);
  });

  it('a node leaving mid-job has its work reassigned: nothing lost, nothing duplicated', async () => {
    const clock = new VirtualClock();
    const nodes: SimNode[] = [{ id: 'a', speed: 50, actual: 50 }, { id: 'b', speed: 50, actual: 50 }, { id: 'c', speed: 50, actual: 50 }];
    const log: string[] = [];
    const events: ParallelEvent[] = [];
    const tasks = tasksOf(Array(12).fill(1000));
    const job = startParallel({ tasks, nodes, runOn: simRun(clock, log), now: clock.now, onEvent: (e) => events.push(e) });
    clock.at(30_000, () => job.leave('b', 'tab closed')); // b is mid-way through its second task
    const out = await clock.run(job.result);
    expect(out.results).toEqual(tasks.map((t) => `result-${t.input}`));
    expect(out.requeued).toBeGreaterThan(0);
    expect(events.some((e) => e.type === 'node-lost' && e.node === 'b')).toBe(true);
    // b's task in flight at 30 s was abandoned and rerun elsewhere; what b finished before leaving is kept (a child
    // session's result is checkpointed). Every task ran to completion exactly once and was accepted exactly once.
    expect(log).toHaveLength(12);
    expect(new Set(log.map((l) => l.split(':')[1])).size).toBe(12);
    expect(events.filter((e) => e.type === 'done')).toHaveLength(12);
    const byB = log.filter((l) => l.startsWith('b:')).map((l) => l.split(':')[1]);
    expect(byB).toHaveLength(1); // 20 s per task: b finished one, was mid-way through the second
    expect(tasks.filter((_, i) => out.ranOn[i] === 'b').map((t) => t.id)).toEqual(byB);
    const requeued = events.filter((e) => e.type === 'requeue').map((e) => (e as { task: string }).task);
    for (const t of requeued) expect(out.ranOn[tasks.findIndex((x) => x.id === t)]).not.toBe('b');
  });

  it('a node whose runOn rejects with parallel/node-left is treated as gone and its task resumes elsewhere', async () => {
    const clock = new VirtualClock();
    const nodes: SimNode[] = [{ id: 'a', speed: 10, actual: 10 }, { id: 'flaky', speed: 10, actual: 10 }];
    let calls = 0;
    const base = simRun(clock);
    const out = await clock.run(runParallel({
      tasks: tasksOf([100, 100, 100, 100]), nodes, now: clock.now,
      runOn: async (node, task, signal) => {
        if (node.id === 'flaky' && calls++ === 1) {
          await clock.sleep(500, signal);
          throw new FerryError('parallel/node-left', 'socket closed');
        }
        return base(node, task, signal);
      },
    }));
    expect(out.results).toEqual([0, 1, 2, 3].map((i) => `result-${i}`));
    expect(out.requeued).toBeGreaterThanOrEqual(1);
    expect(out.ranOn.filter((n) => n === 'flaky').length).toBe(1);
  });

  it('every node gone: parallel/no-nodes naming what is unfinished', async () => {
    const clock = new VirtualClock();
    const job = startParallel({ tasks: tasksOf([100, 100]), nodes: [{ id: 'only', speed: 1, actual: 1 }], runOn: simRun(clock), now: clock.now });
    clock.at(10, () => job.leave('only'));
    const err = await clock.run(job.result).catch((e: unknown) => e);
    expect(isFerryError(err, 'parallel/no-nodes')).toBe(true);
    expect((err as Error).message).toMatch(/t0, t1/);
  });

  it('a failing task fails the job with parallel/task-failed and stops the others', async () => {
    const clock = new VirtualClock();
    const aborted: string[] = [];
    const err = await clock.run(runParallel({
      tasks: tasksOf([100, 1000]), nodes: [{ id: 'a', speed: 10, actual: 10 }, { id: 'b', speed: 10, actual: 10 }], now: clock.now,
      runOn: async (_node, task, signal) => {
        signal.addEventListener('abort', () => aborted.push(task.id));
        await clock.sleep(task.tokens, signal);
        if (task.id === 't0') throw new Error('model crashed');
        return task.id;
      },
    })).catch((e: unknown) => e);
    expect(isFerryError(err, 'parallel/task-failed')).toBe(true);
    expect((err as Error).message).toMatch(/t0.*model crashed/);
    expect(aborted).toEqual(['t1']);
  });

  it('cancels through the AbortSignal: running tasks are aborted and the job rejects with parallel/aborted', async () => {
    const clock = new VirtualClock();
    const controller = new AbortController();
    const aborted: string[] = [];
    const job = runParallel({
      tasks: tasksOf([1000, 1000, 1000]), nodes: [{ id: 'a', speed: 10, actual: 10 }, { id: 'b', speed: 10, actual: 10 }], now: clock.now, signal: controller.signal,
      runOn: async (node, task, signal) => {
        signal.addEventListener('abort', () => aborted.push(task.id));
        return simRun(clock)(node, task, signal);
      },
    });
    clock.at(50_000, () => controller.abort(new Error('user cancelled')));
    const err = await clock.run(job).catch((e: unknown) => e);
    expect(isFerryError(err, 'parallel/aborted')).toBe(true);
    expect(aborted.sort()).toEqual(['t0', 't1']);
    expect(clock.now()).toBe(50_000);
  });

  it('rejects malformed jobs with typed errors', () => {
    expect(() => runParallel({ tasks: tasksOf([1, 1]).map((t) => ({ ...t, id: 'same' })), nodes: [{ id: 'a', speed: 1 }], runOn: async () => 0 })).toThrow(/appears twice/);
    expect(() => runParallel({ tasks: tasksOf([1]), nodes: [{ id: 'a', speed: 0 }], runOn: async () => 0 })).toThrow(/measure it first/);
  });
});
