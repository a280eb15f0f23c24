import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock, startParallel, type ParallelNode, type ParallelTask } from '../../../src/core/parallel/index.ts';

interface SimNode extends ParallelNode {
  readonly actual: number;
}

describe('runParallel properties', () => {
  it('whatever the sizes, speeds and departures (one node stays): every result once, in order', async () => {
    const arb = fc.record({
      sizes: fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 20 }),
      nodes: fc.array(fc.record({ told: fc.integer({ min: 1, max: 200 }), actual: fc.integer({ min: 1, max: 200 }), leaveAt: fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }) }), { minLength: 1, maxLength: 5 }),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ sizes, nodes }) => {
      const clock = new VirtualClock();
      const sim: SimNode[] = nodes.map((n, i) => ({ id: `n${i}`, speed: n.told, actual: n.actual }));
      const tasks: ParallelTask<number>[] = sizes.map((tokens, i) => ({ id: `t${i}`, tokens, input: i }));
      const completions = new Map<string, number>();
      const acceptedAt = new Map<string, number>();
      const job = startParallel({
        tasks, nodes: sim, now: clock.now,
        onEvent: (e) => { if (e.type === 'done') acceptedAt.set(e.task, clock.now()); },
        runOn: async (node, task, signal) => {
          await clock.sleep((task.tokens / node.actual) * 1000, signal);
          completions.set(task.id, (completions.get(task.id) ?? 0) + 1);
          return task.input * 10;
        },
      });
      // Every node but the first may leave at some point.
      nodes.forEach((n, i) => { if (i > 0 && n.leaveAt !== undefined) clock.at(n.leaveAt, () => job.leave(`n${i}`)); });
      const out = await clock.run(job.result);
      expect(out.results).toEqual(sizes.map((_, i) => i * 10));
      tasks.forEach((t, i) => {
        // A result is only taken from a node while it was still there.
        const leftAt = nodes[Number(out.ranOn[i]!.slice(1))]!.leaveAt;
        if (out.ranOn[i] !== 'n0' && leftAt !== undefined) expect(acceptedAt.get(t.id)!).toBeLessThanOrEqual(leftAt);
        // Leaving aborts the work, so no task ever runs to completion twice.
        expect(completions.get(t.id)).toBe(1);
      });
    }), { numRuns: 60 });
  });
});
