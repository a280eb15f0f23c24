/**
 * Context parallelism in the product (DESIGN §7): a step's forked children run as child sessions on the nodes of
 * the user's space — its devices offering themselves, and cloud workers when allowed — scheduled with the
 * context-parallel scheduler in proportion to each node's measured decode speed, with work stealing.
 *
 * Each child is a session of its own (child-session.ts), created here and published under its own snapshot and
 * key. An attempt is a relay run pinned to one node (`where: {space, node}`); the relay fails a pinned run with
 * `relay/node-left` when its node goes, and this turns that (or a stream that cannot be re-established) into
 * `parallel/node-left`, so the scheduler puts the child back in the pool. The next attempt, on another node,
 * resumes the child's snapshot — from its last published checkpoint, with input `resume`, when it had published
 * since it started — so nothing acknowledged is lost. A child's result is read from its final published snapshot
 * (done → its summary, idle → its last reply), whichever node finished it.
 *
 * A child that fails for real (its run fails with any other error) is a failed child (ok=false, saying why), and
 * the others go on. When no other node can take the children at the start (none in the space that the privacy and
 * budget allow, the relay out of reach), they run here, one after another, as without a space (a `here` progress
 * says why). The whole job fails — and with it the step — only when every node it started on is gone, or the relay
 * goes mid-job. Cancelling (the signal) hands every running child back and answers the children not finished as
 * cancelled, as the local runner does.
 *
 * Web-standard APIs only (fetch, WebSocket, WebCrypto): the same module runs in a browser's agent worker and in Node.
 */
import { FerryError, isFerryError } from '../errors.ts';
import { RelayHttp, startSealedRun, type RunRecord, type WorkerList } from '../protocol/index.ts';
import type { ChildSpend } from '../runtime/loop.ts';
import type { ChildContext, RunChildren } from '../runtime/runtime.ts';
import type { ChildResult, SubTask } from '../runtime/wit.ts';
import { privateSession } from '../snapshot/index.ts';
import { createMemoryStore, type Store } from '../store/index.ts';
import { ChildSessionMaker, childStanding, type ChildSession, type ChildSetup, type ChildStanding } from './child-session.ts';
import { childResultOf, hereChildren } from './children-here.ts';
import type { ChildProgress, JobNode } from '../runtime/child-progress.ts';
import { chooseNodes, listSpaceWorkers, type Lane, type NodeChoice } from './relay-nodes.ts';
import { defaultOpenSocket, followRun, type OpenSocket } from './run-follow.ts';
import { startParallel, type ParallelEvent, type ParallelJob } from './scheduler.ts';
import type { ParallelTask } from './split.ts';

export interface RelayChildrenOptions {
  relayUrl: string;
  /** The space id (spaceIdOf(secret)) whose nodes take the children. */
  space: string;
  /** May the relay's cloud workers take children too? Default false: the user's own devices only. */
  cloud?: boolean;
  /** The parent's setup, to create child sessions like it (components, model, sampling). */
  setup: ChildSetup;
  /** Opens a run's event stream; default the platform's WebSocket. */
  openSocket?: OpenSocket;
  fetch?: typeof fetch;
  onProgress?: (progress: ChildProgress) => void;
  /** Children one node runs at once, at most (its slots otherwise); default 4. */
  maxLanes?: number;
  /** Only these nodes (relay worker ids), e.g. the ones the user picked; default every node the space allows. */
  only?: readonly string[];
  /** Where the child sessions are made and their final states fetched to; default a memory store per job. */
  store?: Store;
  /** The relay worker id of the node the parent runs on, when it is one of the relay's (a cloud run's parent, or a device that offers itself). */
  host?: string;
  /** The most a step's children may cost on workers that charge, USD (the user's budget). Absent: no limit. */
  maxCostUsd?: number;
  /**
   * The prompt the children share with their parent (session `parent`), as prefix keys keyed with the parent's
   * session key (placement/fleet.ts heldPrefixKeys) and its length: nodes that list them hold its KV, and get the
   * children first where the placement policy says so. Absent, or undefined: children are planned by speed alone.
   */
  prefix?: (parent: string) => Promise<{ keys: readonly string[]; promptTokens: number } | undefined>;
}

/** A RuntimeSetup.runChildren that runs children as child sessions on the space's nodes. */
export function relayChildren(options: RelayChildrenOptions): RunChildren {
  return (tasks, context, signal, spent) => runRelayChildren(options, tasks, context, signal, spent);
}

/** A child's generation at most, tokens, where the sampling does not say. */
const DEFAULT_CHILD_OUTPUT = 256;

/** Rough size of a child's work for the plan: its task's tokens (about 4 characters each) plus one full generation. */
function estimateTokens(task: SubTask, setup: ChildSetup): number {
  return Math.ceil(task.task.length / 4) + (setup.sampling?.maxTokens ?? DEFAULT_CHILD_OUTPUT);
}

/** Which nodes the job may use; with a budget, the work it is at most (every child's task read, a full reply written). */
function nodeChoice(opts: RelayChildrenOptions, work: readonly ParallelTask<SubTask>[], prefix?: { keys: readonly string[]; promptTokens: number }): NodeChoice {
  const output = opts.setup.sampling?.maxTokens ?? DEFAULT_CHILD_OUTPUT;
  const outputTokens = work.length * output;
  const promptTokens = work.reduce((sum, t) => sum + t.tokens - output, 0);
  return {
    ...(prefix && prefix.keys.length > 0 ? { prefix: { keys: prefix.keys, promptTokens: prefix.promptTokens + Math.ceil(promptTokens / work.length), outputTokens: output } } : {}),
    cloud: opts.cloud ?? false,
    ...(opts.maxLanes ? { maxLanes: opts.maxLanes } : {}),
    ...(opts.only ? { only: opts.only } : {}),
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts.maxCostUsd !== undefined ? { budget: { usd: opts.maxCostUsd, promptTokens, outputTokens } } : {}),
  };
}

async function runRelayChildren(opts: RelayChildrenOptions, tasks: readonly SubTask[], context: ChildContext, signal: AbortSignal | undefined, spent: ChildSpend): Promise<ChildResult[]> {
  if (tasks.length === 0) return [];
  const emit = opts.onProgress ?? (() => {});
  // A private session's children never leave the device either.
  if (context.private) return hereChildren(emit, privateSession('children').message)(tasks, context, signal, spent);
  const relay = new RelayHttp({ baseUrl: opts.relayUrl, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
  const work = tasks.map((t): ParallelTask<SubTask> => ({ id: t.id, tokens: estimateTokens(t, opts.setup), input: t }));
  let chosen: ReturnType<typeof chooseNodes>;
  let listed: WorkerList;
  try {
    const [list, prefix] = await Promise.all([listSpaceWorkers(opts.relayUrl, opts.space, opts.fetch), opts.prefix?.(context.parent).catch(() => undefined)]);
    listed = list;
    chosen = chooseNodes(listed, nodeChoice(opts, work, prefix));
  } catch (err) {
    // Nowhere else to run them (no node, the relay out of reach): here, one after another, rather than not at all.
    return hereChildren(emit, err instanceof Error ? err.message : String(err))(tasks, context, signal, spent);
  }
  const { nodes, lanes } = chosen;
  const stop = new AbortController();
  const job = new ChildJob(opts, relay, nodes, listed, emit);
  const sessions = new ChildSessionMaker(job.store, opts.setup, context, relay).inBackground(tasks, stop.signal);
  const scheduled = startParallel<SubTask, Finished, Lane>({
    tasks: work,
    nodes: lanes,
    runOn: async (lane, task, laneSignal) => job.attempt(lane.node, await sessions.get(task.id), laneSignal),
    ...(signal ? { signal } : {}),
    onEvent: (e) => job.onSchedulerEvent(e, lanes, scheduled),
  });
  try {
    const outcome = await scheduled.result;
    return await Promise.all(outcome.results.map((f) => f.result));
  } catch (err) {
    if (!isFerryError(err, 'parallel/aborted')) throw err;
    return await Promise.all(tasks.map((t) => job.read.get(t.id)?.catch(() => undefined).then((r) => r ?? cancelled(t)) ?? cancelled(t)));
  } finally {
    stop.abort();
    for (const cost of job.costs.values()) spent.costMicros += cost;
  }
}

/**
 * A child whose run has ended: its result is read from its snapshot in the background, so its node can take the
 * next child meanwhile. (Wrapped, so the scheduler does not wait for it.)
 */
interface Finished {
  readonly result: Promise<ChildResult>;
}

const cancelled = (t: SubTask): ChildResult => ({ id: t.id, ok: false, output: 'Cancelled before it finished.' });

/** One job's attempts: run a child on a node, follow it, and turn its end into a result, a requeue or a failed child. */
class ChildJob {
  readonly store: Store;
  /** Each child's result being read (or read) from its snapshot, by child id. */
  readonly read = new Map<string, Promise<ChildResult>>();
  /** What each child has cost on paid nodes, as its snapshot last said, by child id. */
  readonly costs = new Map<string, number>();
  readonly #names: ReadonlyMap<string, string>;
  readonly #replies = new Map<string, string>();
  readonly #attempts = new Map<string, number>();
  readonly #open: OpenSocket;
  readonly #lost = new Set<string>();
  /** The snapshot version of each child that `store` holds: a fetch asks only for what came after. */
  readonly #held = new Map<string, number>();

  constructor(
    private readonly opts: RelayChildrenOptions,
    private readonly relay: RelayHttp,
    private readonly nodes: readonly JobNode[],
    /** The relay's workers as listed when the job started: a child's key is sealed to the node it is pinned to. */
    private readonly listed: WorkerList,
    private readonly emit: (p: ChildProgress) => void,
  ) {
    this.store = opts.store ?? createMemoryStore();
    this.#names = new Map(nodes.map((n) => [n.id, n.name]));
    this.#open = opts.openSocket ?? defaultOpenSocket();
  }

  async attempt(node: string, child: ChildSession, signal: AbortSignal): Promise<Finished> {
    const { task } = child;
    const n = (this.#attempts.get(task.id) ?? 0) + 1;
    this.#attempts.set(task.id, n);
    let input: 'start' | 'resume' = 'start';
    if (n > 1) {
      // A later attempt: the child may have published since it started, or even finished before its node went.
      const standing = await this.#standing(child);
      if (standing.state && standing.state.status !== 'running') return this.#finished(task, Promise.resolve(childResultOf(task.id, standing.state, this.#replies.get(task.id) ?? '')));
      if (standing.version > child.startVersion) input = 'resume';
    }
    this.emit({ type: 'child-start', child: task.id, session: child.sessionId, node, attempt: n, input });
    let run: RunRecord;
    try {
      run = await startSealedRun(this.relay, {
        snapshot: child.snapshotId,
        key: child.key,
        writeToken: child.writeToken,
        input: input === 'start' ? { type: 'start', task: task.task } : { type: 'resume' },
        where: { space: this.opts.space, node },
      }, this.listed);
    } catch (err) {
      if (isFerryError(err, 'relay/unknown-node')) throw this.#nodeLeft(node, task.id, 'it is no longer attached', err);
      throw err;
    }
    let record: RunRecord;
    let checkpoint: string | undefined;
    try {
      record = await followRun(this.relay, run.id, ({ event }) => {
        if (event.type === 'reply' && typeof event.text === 'string') this.#replies.set(task.id, event.text);
        if (event.type === 'checkpoint' && typeof event.id === 'string') checkpoint = event.id;
        if (event.type === 'published' && typeof event.version === 'number' && checkpoint) {
          this.emit({ type: 'child-checkpoint', child: task.id, node, checkpoint, version: event.version });
        }
      }, { open: this.#open, key: child.key, signal });
    } catch (err) {
      // Whatever it is doing, it hands back: one writer per snapshot, whoever runs the child next.
      void this.relay.stopRun(run.id, child.writeToken).catch(() => undefined);
      if (signal.aborted) throw signal.reason ?? err;
      if (isFerryError(err, 'parallel/stream-lost')) throw this.#nodeLeft(node, task.id, err.message, err);
      throw err;
    }
    return this.#ended(child, node, record);
  }

  /** A run's end: the child's result (read from its snapshot), a requeue (its node left), or a failed child. */
  #ended(child: ChildSession, node: string, record: RunRecord): Finished {
    const { task } = child;
    const error = record.error ?? { code: 'parallel/unknown', message: 'no reason given' };
    switch (record.status) {
      case 'done':
      case 'idle':
        return this.#finished(task, this.#standing(child).then((standing) => {
          if (!standing.state) throw new FerryError('parallel/child-lost', `Child "${task.id}" ended "${record.status}" on node ${this.#names.get(node)}, but its snapshot holds none of its checkpoints.`);
          return childResultOf(task.id, standing.state, this.#replies.get(task.id) ?? '');
        }));
      case 'failed':
        if (error.code === 'relay/node-left') throw this.#nodeLeft(node, task.id, error.message);
        this.emit({ type: 'child-failed', child: task.id, node, error });
        // What its checkpointed steps cost still counts (its snapshot is read for that alone; unreadable, it adds none).
        return this.#finished(task, this.#standing(child).catch(() => undefined).then(() => ({ id: task.id, ok: false, output: `The child failed on node ${this.#names.get(node)} (${error.code}): ${error.message}` })));
      default:
        // Stopped or interrupted by something other than this job (its node draining, the relay restarting).
        throw this.#nodeLeft(node, task.id, `its run ended "${record.status}"`);
    }
  }

  async #standing(child: ChildSession): Promise<ChildStanding> {
    const standing = await childStanding(this.store, child, this.relay, this.#held.get(child.task.id) ?? child.startVersion);
    this.#held.set(child.task.id, standing.version);
    if (standing.costMicros !== undefined) this.costs.set(child.task.id, standing.costMicros);
    return standing;
  }

  #finished(task: SubTask, result: Promise<ChildResult>): Finished {
    result.catch(() => undefined); // awaited with the others once the job is done
    this.read.set(task.id, result);
    return { result };
  }

  /** The scheduler's events as progress (its plan, lanes summed per node); a node that left takes its other slots with it. */
  onSchedulerEvent(e: ParallelEvent, lanes: readonly Lane[], scheduled: ParallelJob<Finished>): void {
    if (e.type === 'plan') {
      const plan = Object.fromEntries(this.nodes.map((n) => [n.id, lanes.filter((l) => l.node === n.id).flatMap((l) => e.queues[l.id] ?? [])]));
      this.emit({ type: 'nodes', nodes: this.nodes, plan });
      return;
    }
    const nodeOf = (lane: string) => lanes.find((l) => l.id === lane)?.node ?? lane;
    const node = nodeOf(e.node);
    switch (e.type) {
      case 'done':
        void this.read.get(e.task)?.then((r) => this.emit({ type: 'child-done', child: e.task, node, ok: r.ok, ms: Math.round(e.ms) }), () => undefined);
        break;
      case 'steal':
        this.emit({ type: 'child-stolen', child: e.task, node, from: nodeOf(e.from) });
        break;
      case 'requeue':
        this.emit({ type: 'child-requeued', child: e.task, node });
        break;
      case 'node-lost':
        if (this.#lost.has(node)) break;
        this.#lost.add(node);
        this.emit({ type: 'node-lost', node, reason: e.reason });
        for (const l of lanes) if (l.node === node && l.id !== e.node) queueMicrotask(() => scheduled.leave(l.id, e.reason));
        break;
      case 'start':
        break;
    }
  }

  #nodeLeft(node: string, child: string, why: string, cause?: unknown): FerryError {
    return new FerryError('parallel/node-left', `Node ${this.#names.get(node) ?? node} left while running child "${child}": ${why}`, { ...(cause ? { cause } : {}), details: { node, child } });
  }
}
