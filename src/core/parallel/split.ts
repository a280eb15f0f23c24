/**
 * Splitting a big job into sub-contexts and planning them over nodes in proportion to measured speed
 * (DESIGN.md §7, context parallelism).
 */
import { FerryError } from '../errors.ts';

/** One unit of work: a sub-context (a forked child session over some sources) with its estimated size in tokens. */
export interface ParallelTask<I = unknown> {
  readonly id: string;
  readonly tokens: number;
  readonly input: I;
}

/** A node that can run tasks, with its measured speed in tokens per second for the job's model. */
export interface ParallelNode {
  readonly id: string;
  readonly speed: number;
}

/** A piece of the job's context (a source, a segment) in job order. */
export interface ContextItem<T = unknown> {
  readonly id: string;
  readonly tokens: number;
  readonly value: T;
}

/**
 * Groups consecutive items into sub-contexts of at most `maxTokens` each (an item larger than that is a sub-context
 * of its own), keeping job order: merging the parts' results in task order gives the job's order back.
 */
export function splitJob<T>(items: readonly ContextItem<T>[], maxTokens: number): ParallelTask<ContextItem<T>[]>[] {
  if (!(maxTokens > 0) || !Number.isFinite(maxTokens)) throw new FerryError('parallel/bad-job', `splitJob: maxTokens must be a positive number, got ${maxTokens}.`);
  const ids = new Set<string>();
  const parts: ParallelTask<ContextItem<T>[]>[] = [];
  let group: ContextItem<T>[] = [];
  let size = 0;
  const flush = () => {
    if (group.length === 0) return;
    parts.push({ id: `part-${parts.length}`, tokens: size, input: group });
    group = [];
    size = 0;
  };
  for (const item of items) {
    if (!(item.tokens >= 0) || !Number.isFinite(item.tokens)) throw new FerryError('parallel/bad-job', `Item "${item.id}" has an invalid token count (${item.tokens}); counts must be non-negative numbers.`);
    if (ids.has(item.id)) throw new FerryError('parallel/bad-job', `Item id "${item.id}" appears twice; each piece of context must be listed once.`);
    ids.add(item.id);
    if (size + item.tokens > maxTokens) flush();
    group.push(item);
    size += item.tokens;
  }
  flush();
  return parts;
}

export function validateJob(tasks: readonly ParallelTask<unknown>[], nodes: readonly ParallelNode[]): void {
  const ids = new Set<string>();
  for (const t of tasks) {
    if (ids.has(t.id)) throw new FerryError('parallel/bad-job', `Task id "${t.id}" appears twice; task ids must be unique.`);
    if (!(t.tokens >= 0) || !Number.isFinite(t.tokens)) throw new FerryError('parallel/bad-job', `Task "${t.id}" has an invalid token count (${t.tokens}).`);
    ids.add(t.id);
  }
  const nodeIds = new Set<string>();
  for (const n of nodes) {
    if (nodeIds.has(n.id)) throw new FerryError('parallel/bad-job', `Node "${n.id}" is listed twice.`);
    if (!(n.speed > 0) || !Number.isFinite(n.speed)) throw new FerryError('parallel/bad-job', `Node "${n.id}" has speed ${n.speed}; measure it first (tokens per second, > 0).`);
    nodeIds.add(n.id);
  }
}

/**
 * Static plan: largest task first, each to the node that would finish it soonest given what it already holds
 * (ties to the faster node). The result gives each node's queue, largest first, in proportion to its speed.
 */
export function planProportional(tasks: readonly Pick<ParallelTask, 'tokens'>[], nodes: readonly ParallelNode[]): Map<string, number[]> {
  const plan = new Map<string, number[]>(nodes.map((n) => [n.id, []]));
  if (nodes.length === 0) return plan;
  const load = new Map<string, number>(nodes.map((n) => [n.id, 0]));
  const order = tasks.map((_, i) => i).sort((a, b) => tasks[b]!.tokens - tasks[a]!.tokens || a - b);
  for (const i of order) {
    let best = nodes[0]!;
    let bestFinish = Infinity;
    for (const n of nodes) {
      const finish = (load.get(n.id)! + tasks[i]!.tokens) / n.speed;
      if (finish < bestFinish - 1e-12 || (Math.abs(finish - bestFinish) <= 1e-12 && n.speed > best.speed)) {
        best = n;
        bestFinish = finish;
      }
    }
    load.set(best.id, load.get(best.id)! + tasks[i]!.tokens);
    plan.get(best.id)!.push(i);
  }
  return plan;
}
