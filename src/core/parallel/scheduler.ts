/**
 * The context-parallel scheduler (DESIGN.md §7): runs a job's tasks over nodes, starting from a plan proportional
 * to measured speed, with work stealing (an idle node takes the largest queued task from the node with the longest
 * backlog, when it would finish it sooner), and survives nodes leaving: a lost node's running and queued tasks go
 * back to the pool and resume elsewhere. Results come back in task order, each exactly once.
 *
 * Generic over `runOn(node, task, signal)`: the product forks a child session on a relay node; the simulator
 * (bench/placement.ts) and the tests sleep on a virtual clock. Same scheduler either way.
 *
 * Abort stops the work, not just the wait: every running task's signal is aborted and the job rejects with
 * `parallel/aborted`.
 */
import { FerryError, isFerryError } from '../errors.ts';
import { planProportional, validateJob, type ParallelNode, type ParallelTask } from './split.ts';

export type ParallelEvent =
  /** The static plan, before anything starts: each node's queue of task ids, in the order it runs them. */
  | { readonly type: 'plan'; readonly queues: Readonly<Record<string, readonly string[]>> }
  | { readonly type: 'start'; readonly node: string; readonly task: string; readonly attempt: number }
  | { readonly type: 'done'; readonly node: string; readonly task: string; readonly ms: number }
  | { readonly type: 'steal'; readonly node: string; readonly from: string; readonly task: string }
  | { readonly type: 'requeue'; readonly node: string; readonly task: string }
  | { readonly type: 'node-lost'; readonly node: string; readonly reason: string };

export interface ParallelOptions<I, R, N extends ParallelNode> {
  readonly tasks: readonly ParallelTask<I>[];
  readonly nodes: readonly N[];
  readonly runOn: (node: N, task: ParallelTask<I>, signal: AbortSignal) => Promise<R>;
  readonly signal?: AbortSignal;
  /** Does this rejection mean the node is gone (rather than the task failing)? Default: FerryError `parallel/node-left`. */
  readonly isNodeLost?: (err: unknown) => boolean;
  /** Clock for measuring speed, ms. Default `performance.now()`; the simulator passes its virtual clock. */
  readonly now?: () => number;
  /** Work stealing on (default) or off (a static proportional split, for comparison). */
  readonly steal?: boolean;
  readonly onEvent?: (event: ParallelEvent) => void;
}

export interface ParallelOutcome<R> {
  /** One result per task, in task order. */
  readonly results: R[];
  /** The node that produced each result, in task order. */
  readonly ranOn: string[];
  readonly steals: number;
  /** Tasks put back in the pool because their node left. */
  readonly requeued: number;
  /** Speeds as last measured (tokens/s), by node id. */
  readonly speeds: Record<string, number>;
}

export interface ParallelJob<R> {
  readonly result: Promise<ParallelOutcome<R>>;
  /** The node has gone (tab closed, network lost): its running task is abandoned and requeued with its queue. */
  leave(nodeId: string, reason?: string): void;
}

const defaultLost = (err: unknown) => isFerryError(err, 'parallel/node-left');

interface Running {
  readonly index: number;
  readonly attempt: number;
  readonly started: number;
  readonly controller: AbortController;
}

/** Starts a job; see ParallelJob. Throws `parallel/bad-job` synchronously on malformed tasks or nodes. */
export function startParallel<I, R, N extends ParallelNode>(opts: ParallelOptions<I, R, N>): ParallelJob<R> {
  const { tasks, nodes, runOn } = opts;
  validateJob(tasks, nodes);
  const now = opts.now ?? (() => performance.now());
  const isLost = opts.isNodeLost ?? defaultLost;
  const steal = opts.steal ?? true;
  const emit = opts.onEvent ?? (() => {});

  const plan = planProportional(tasks, nodes);
  const queues = new Map<string, number[]>(nodes.map((n) => [n.id, plan.get(n.id)!]));
  const speed = new Map<string, number>(nodes.map((n) => [n.id, n.speed]));
  const alive = new Set(nodes.map((n) => n.id));
  const running = new Map<string, Running>();
  const pool: number[] = []; // tasks of lost nodes, waiting for anyone
  const results: R[] = new Array<R>(tasks.length);
  const ranOn: string[] = new Array<string>(tasks.length);
  const done = new Array<boolean>(tasks.length).fill(false);
  const attempts = new Array<number>(tasks.length).fill(0);
  let remaining = tasks.length;
  let steals = 0;
  let requeued = 0;
  let settled = false;

  let resolve!: (o: ParallelOutcome<R>) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<ParallelOutcome<R>>((res, rej) => {
    resolve = res;
    reject = rej;
  });

  const finish = (err?: unknown) => {
    if (settled) return;
    settled = true;
    opts.signal?.removeEventListener('abort', onAbort);
    for (const r of running.values()) r.controller.abort(err ?? new FerryError('parallel/done', 'The job has finished.'));
    running.clear();
    if (err !== undefined) reject(err);
    else resolve({ results, ranOn, steals, requeued, speeds: Object.fromEntries(speed) });
  };

  const backlogMs = (id: string): number => {
    const s = speed.get(id)!;
    let tokens = 0;
    for (const i of queues.get(id)!) tokens += tasks[i]!.tokens;
    const r = running.get(id);
    const inFlight = r ? Math.max(0, (tasks[r.index]!.tokens / s) * 1000 - (now() - r.started)) : 0;
    return (tokens / s) * 1000 + inFlight;
  };

  /** What `id` should run next: its own queue, then lost nodes' tasks (largest first), then a steal. */
  const next = (id: string): number | undefined => {
    const own = queues.get(id)!;
    if (own.length > 0) return own.shift();
    if (pool.length > 0) {
      pool.sort((a, b) => tasks[b]!.tokens - tasks[a]!.tokens || a - b);
      return pool.shift();
    }
    if (!steal) return undefined;
    let victim: string | undefined;
    let victimBacklog = 0;
    for (const other of alive) {
      if (other === id || queues.get(other)!.length === 0) continue;
      const b = backlogMs(other);
      if (b > victimBacklog) {
        victim = other;
        victimBacklog = b;
      }
    }
    if (victim === undefined) return undefined;
    const q = queues.get(victim)!;
    const mySpeed = speed.get(id)!;
    // The largest queued task this node would finish before the victim gets through its backlog.
    let pick = -1;
    for (let k = 0; k < q.length; k++) {
      const t = tasks[q[k]!]!.tokens;
      if ((t / mySpeed) * 1000 < victimBacklog && (pick < 0 || t > tasks[q[pick]!]!.tokens)) pick = k;
    }
    if (pick < 0) return undefined;
    const [index] = q.splice(pick, 1);
    steals++;
    emit({ type: 'steal', node: id, from: victim, task: tasks[index!]!.id });
    return index;
  };

  const lose = (id: string, reason: string) => {
    if (!alive.delete(id)) return;
    emit({ type: 'node-lost', node: id, reason });
    const r = running.get(id);
    running.delete(id);
    const back = [...(r ? [r.index] : []), ...queues.get(id)!];
    queues.set(id, []);
    for (const i of back) {
      if (done[i]) continue;
      pool.push(i);
      requeued++;
      emit({ type: 'requeue', node: id, task: tasks[i]!.id });
    }
    r?.controller.abort(new FerryError('parallel/node-left', `Node ${id} left: ${reason}.`));
  };

  const pump = () => {
    if (settled) return;
    if (remaining === 0) return finish();
    for (const id of alive) {
      if (running.has(id)) continue;
      const index = next(id);
      if (index !== undefined) launch(id, index);
    }
    if (alive.size === 0 || (running.size === 0 && remaining > 0)) {
      const left = tasks.filter((_, i) => !done[i]).map((t) => t.id);
      finish(new FerryError('parallel/no-nodes', `Every node has left with ${left.length} task(s) unfinished (${left.slice(0, 5).join(', ')}${left.length > 5 ? ', …' : ''}). Connect a node to resume the job.`, { details: { unfinished: left } }));
    }
  };

  const launch = (id: string, index: number) => {
    const node = nodes.find((n) => n.id === id)!;
    const task = tasks[index]!;
    const attempt = ++attempts[index]!;
    const controller = new AbortController();
    const started = now();
    running.set(id, { index, attempt, started, controller });
    emit({ type: 'start', node: id, task: task.id, attempt });
    let p: Promise<R>;
    try {
      p = runOn(node, task, controller.signal);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => {
        const r = running.get(id);
        if (settled || done[index] || !r || r.attempt !== attempt || r.index !== index) return; // abandoned attempt
        running.delete(id);
        done[index] = true;
        results[index] = value;
        ranOn[index] = id;
        remaining--;
        const ms = now() - started;
        if (ms > 0 && task.tokens > 0) speed.set(id, 0.5 * speed.get(id)! + 0.5 * (task.tokens / (ms / 1000)));
        emit({ type: 'done', node: id, task: task.id, ms });
        pump();
      },
      (err: unknown) => {
        const r = running.get(id);
        if (settled || done[index] || !r || r.attempt !== attempt) return;
        if (isLost(err)) {
          lose(id, err instanceof Error ? err.message : String(err));
          pump();
          return;
        }
        running.delete(id);
        finish(new FerryError('parallel/task-failed', `Task "${task.id}" failed on node ${id}: ${err instanceof Error ? err.message : String(err)}`, { cause: err, details: { task: task.id, node: id } }));
      },
    );
  };

  const onAbort = () => finish(new FerryError('parallel/aborted', 'The job was cancelled; running tasks were stopped.', { cause: opts.signal?.reason }));
  if (opts.signal?.aborted) onAbort();
  else {
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (nodes.length === 0 && tasks.length > 0) finish(new FerryError('parallel/no-nodes', 'No nodes to run the job on. Connect a node, or offer this device.'));
    else {
      // After startParallel has returned, so a listener may already hold the job.
      queueMicrotask(() => {
        emit({ type: 'plan', queues: Object.fromEntries(nodes.map((n) => [n.id, queues.get(n.id)!.map((i) => tasks[i]!.id)])) });
        pump();
      });
    }
  }

  return {
    result,
    leave(nodeId, reason = 'left') {
      if (settled) return;
      lose(nodeId, reason);
      pump();
    },
  };
}

/** Runs a job to the end; see startParallel. */
export function runParallel<I, R, N extends ParallelNode>(opts: ParallelOptions<I, R, N>): Promise<ParallelOutcome<R>> {
  return startParallel(opts).result;
}
