/**
 * The agent runtime as a worker exposes it (comlink): start or open a session, send messages, stop, follow the
 * store when the session moved on there, subscribe to events. One implementation for the browser
 * (workers/agent.worker.ts) and Node worker_threads (server/runtime/agent-thread.ts); each passes its platform
 * — how to make its engine and store, and how to spawn a tool worker. Results and events are plain data, so they
 * cross postMessage; errors are returned as data (SerializedError) so their codes survive. Branch work (fork,
 * rollback, switch) is done on the store by whoever holds it (the page); the worker follows with `reload`.
 */
import { FerryError, type SerializedError } from '../errors.ts';
import type { Engine } from '../llm/engine.ts';
import type { EngineSwitch } from '../llm/fallback-engine.ts';
import { hereChildren } from '../parallel/children-here.ts';
import type { ChildProgress } from '../runtime/child-progress.ts';
import { relayChildren, type RelayChildrenOptions } from '../parallel/relay-children.ts';
import type { OpenSocket } from '../parallel/run-follow.ts';
import { SpaceIdSchema, WorkerIdSchema, fromBase64Url, parseWire } from '../protocol/index.ts';
import { parentPrefix } from '../runtime/held-prefix.ts';
import { importSession } from '../snapshot/index.ts';
import { createMemoryStore, type ObjectId, type Store } from '../store/index.ts';
import { RuntimeRunner } from './runtime-runner.ts';
import { defaultVerifySocket, speculativeRun, type OpenVerifySocket, type SpeculativeRun, type SpeculativeRunOptions } from './speculative-run.ts';
import type { RunnerEvent } from './session-runner.ts';
import { loadComponent, type LoadedComponent } from '../runtime/load.ts';
import type { LoopState, RunInput, Sampling, StreamingGeneration } from '../runtime/loop.ts';
import { AgentRuntime, localTool, type RuntimeSetup } from '../runtime/runtime.ts';
import { isolatedTool, type ComponentFiles, type WorkerHandle } from '../runtime/tool-worker.ts';
import type { ToolLimits } from '../runtime/tools.ts';

/** What an engine being made may tell the session's subscribers (as `engine-loading` / `engine-switch` events). */
export interface EngineNotices {
  loading(progress: number, text: string): void;
  switched(change: EngineSwitch): void;
}

export interface AgentPlatform<EngineSpec> {
  createEngine(spec: EngineSpec, notices: EngineNotices): Promise<Engine>;
  /** A persistent store by name (IndexedDB, a folder); memory when absent. */
  openStore?(name: string): Promise<Store>;
  /** Spawns a tool worker; without it tools run in the agent's thread (no time limit). */
  spawnToolWorker?(): WorkerHandle;
  /** Opens a WebSocket, for following child runs (StartOptions.parallel); default the platform's own WebSocket. */
  openSocket?: OpenSocket;
  /** Opens the socket to a verifying worker (StartOptions.speculative); default the platform's own WebSocket. */
  openVerifySocket?: OpenVerifySocket;
}

/** Where forked children run when they run on other nodes (parallel/relay-children.ts). */
export interface ParallelOptions {
  /** The relay the space's nodes are attached to. */
  relayUrl: string;
  /** The space id (spaceIdOf(secret)): its device nodes take the children. */
  space: string;
  /**
   * May the relay's cloud workers that charge for tokens take children too? Default false: the user's own only (the
   * space's devices, and the relay's workers that charge nothing).
   */
  cloud?: boolean;
  /** This device's own node id, when it offers itself: its one slot is this session's, not a child's. */
  host?: string;
  /** The most a step's children may cost on workers that charge, USD (Settings' budget). Absent: no limit. */
  maxCostUsd?: number;
  /**
   * The session key (base64url) the relay's workers keyed this session's prefixes with, when it ran on one: its
   * children go first to a node that still holds its prompt. Absent: they are planned by speed alone.
   */
  prefixKey?: string;
}

export interface StartOptions<EngineSpec> {
  /** Every component build the session uses, by id: its files (manifest.json, glue, core modules). */
  components: Record<string, ComponentFiles>;
  /** For a new session: the agent's and tools' component ids. */
  agent?: string;
  tools?: string[];
  engine: EngineSpec;
  sampling?: Partial<Sampling>;
  limits?: Partial<ToolLimits>;
  /** A named persistent store; default: memory. */
  store?: string;
  /** Open this session from the store (after importing `file`, a .ferry export, when given). */
  sessionId?: string;
  file?: Uint8Array;
  /**
   * Run each step's forked children as child sessions on the nodes of a space, in parallel, instead of one by one
   * in this worker. Absent: here, one by one. Their progress streams as `child-progress` events either way.
   */
  parallel?: ParallelOptions;
  /**
   * Run the session speculatively: this worker's engine drafts, the relay's worker at `verifyUrl` verifies (ids only
   * on the wire), so every generation is that worker's greedy output. A sampled session runs plainly here instead,
   * and its first run says why (a `notice`).
   */
  speculative?: SpeculativeRunOptions;
}

export interface AgentStatus {
  sessionId: string;
  branch: string;
  head: ObjectId;
  state: LoopState;
  /** The generation streaming now, if one is. */
  generating?: StreamingGeneration;
}

type Result<T> = { ok: T } | { error: SerializedError };

export interface AgentApi<EngineSpec> {
  start(options: StartOptions<EngineSpec>): Promise<Result<AgentStatus>>;
  /** Runs the agent on a message (or the task, or a resume) to its next pause; events go to subscribers. */
  send(input: RunInput): Promise<Result<AgentStatus>>;
  /**
   * Stops the current run after its current step (a generation in flight ends as cancelled); resolves once it has
   * ended, its last checkpoint written — at once when none goes on.
   */
  cancel(): Promise<void>;
  /**
   * The session moved on in the store (the page forked, rolled back or switched branch; a run elsewhere
   * checkpointed): the runtime restores itself to the store's head.
   */
  reload(): Promise<Result<AgentStatus>>;
  /** The listener is called with every event of every run (pass it through comlink's proxy()). */
  subscribe(listener: (event: RunnerEvent) => void): void;
  status(): Promise<Result<AgentStatus>>;
  close(): Promise<void>;
}

export function createAgentApi<EngineSpec>(platform: AgentPlatform<EngineSpec>): AgentApi<EngineSpec> {
  let current: { runtime: AgentRuntime; runner: RuntimeRunner; engine: Engine; store: Store; speculation: SpeculativeRun | undefined; notice: string | undefined } | undefined;
  const listeners: ((event: RunnerEvent) => void)[] = [];
  /**
   * Across a worker boundary a listener is a comlink proxy: each call answers once the far side has handled the
   * event, in order. A run's result waits for the last of them, so a caller never sees send() resolve before the
   * run's last events (they travel over another message port, with no ordering against the result).
   */
  const delivering = new Map<(event: RunnerEvent) => void, Promise<unknown>>();
  const emit = (event: RunnerEvent) => {
    for (const listener of listeners) {
      const answer = listener(event) as unknown;
      if (answer instanceof Promise) delivering.set(listener, answer.catch(() => undefined));
    }
  };
  const notices: EngineNotices = {
    loading: (progress, text) => emit({ type: 'engine-loading', progress, text }),
    switched: (change) => emit({ type: 'engine-switch', change }),
  };
  const delivered = async (): Promise<void> => {
    await Promise.all(delivering.values());
  };
  const live = () => {
    if (!current) throw new FerryError('runtime/not-started', 'No agent session is running in this worker; call start() first.');
    return current;
  };
  const status = (): AgentStatus => {
    const { runtime } = live();
    const generating = runtime.generating;
    return { sessionId: runtime.session.id, branch: runtime.session.branch, head: runtime.head, state: runtime.loopState, ...(generating ? { generating } : {}) };
  };
  const close = async () => {
    if (!current) return;
    const { runtime, runner, engine, speculation } = current;
    current = undefined;
    await runner.stop();
    await runtime.dispose();
    speculation?.close();
    await engine.dispose();
  };

  return {
    start: (options) =>
      settle(async () => {
        await close();
        const store = options.store && platform.openStore ? await platform.openStore(options.store) : createMemoryStore();
        const engine = await platform.createEngine(options.engine, notices);
        let speculation: SpeculativeRun | undefined;
        try {
          speculation = options.speculative ? speculativeRun(engine, options.speculative, options.sampling, platform.openVerifySocket ?? defaultVerifySocket()) : undefined;
          const loaded = new Map<string, Promise<LoadedComponent>>();
          const load = (id: string) => {
            const files = options.components[id];
            if (!files) return Promise.reject(new FerryError('runtime/missing-component', `The session needs component ${id}, which was not provided to the worker.`));
            let p = loaded.get(id);
            if (!p) loaded.set(id, (p = loadComponent(id, { read: async (file) => files[file] ?? new Uint8Array() })));
            return p;
          };
          const spawn = platform.spawnToolWorker;
          const setup: RuntimeSetup = {
            engine: speculation?.engine ?? engine,
            load,
            // A session that comes back from a worker whose engine shares this one's KV format resumes from the
            // worker's KV instead of prefilling here; the device saves none itself (its steps stay small).
            kv: {},
            ...(options.sampling ? { sampling: options.sampling } : {}),
            startTool: spawn
              ? (component) => isolatedTool({ spawn, componentId: component.id, files: component.files, ...(options.limits ? { limits: options.limits } : {}) })
              : (component, grants) => localTool(component, grants, options.limits),
          };
          const onProgress = (progress: ChildProgress) => emit({ type: 'child-progress', progress });
          setup.runChildren = options.parallel
            ? relayChildren({
                ...childrenWhere(checkParallel(options.parallel), store),
                // Child sessions are made here only to be published: their tools need no worker of their own.
                setup: { engine, load, ...(options.sampling ? { sampling: options.sampling } : {}) },
                ...(platform.openSocket ? { openSocket: platform.openSocket } : {}),
                onProgress,
              })
            : hereChildren(onProgress);
          let runtime: AgentRuntime;
          if (options.file) {
            const id = await importSession(store, options.file);
            runtime = await AgentRuntime.open(store, setup, options.sessionId ?? id);
          } else if (options.sessionId) {
            runtime = await AgentRuntime.open(store, setup, options.sessionId);
          } else {
            if (!options.agent) throw new FerryError('runtime/bad-input', 'start() needs an agent component id for a new session (or a sessionId to open).');
            runtime = await AgentRuntime.create(store, setup, { agent: options.agent, tools: options.tools ?? [] });
          }
          current = { runtime, runner: new RuntimeRunner(runtime, emit), engine, store, speculation, notice: speculation?.fallback };
          return status();
        } catch (err) {
          speculation?.close();
          await engine.dispose();
          throw err;
        }
      }),
    send: (input) =>
      settle(async () => {
        try {
          const session = live();
          if (session.notice) {
            emit({ type: 'notice', message: session.notice });
            session.notice = undefined;
          }
          await session.runner.send(input);
        } finally {
          await delivered();
        }
        return status();
      }),
    cancel: async () => {
      await current?.runner.stop();
      await delivered();
    },
    reload: () => settle(async () => (await live().runtime.reload(), status())),
    subscribe: (listener) => void listeners.push(listener),
    status: () => settle(async () => status()),
    close,
  };
}

function checkParallel(p: ParallelOptions): ParallelOptions {
  if (!/^https?:\/\/[^/]+/i.test(p.relayUrl)) throw new FerryError('runtime/bad-input', `parallel.relayUrl must be the relay's http(s) address, got "${p.relayUrl}".`);
  const space = parseWire(SpaceIdSchema, p.space, 'parallel.space (a space id, not its secret)', 'runtime/bad-input');
  const host = p.host === undefined ? undefined : parseWire(WorkerIdSchema, p.host, 'parallel.host (this device\'s node id)', 'runtime/bad-input');
  if (p.maxCostUsd !== undefined && !(p.maxCostUsd >= 0 && Number.isFinite(p.maxCostUsd))) throw new FerryError('runtime/bad-input', `parallel.maxCostUsd must be a number of dollars, 0 or more, got ${p.maxCostUsd}.`);
  if (p.prefixKey !== undefined && fromBase64Url(p.prefixKey, 'runtime/bad-input').length !== 32) throw new FerryError('runtime/bad-input', 'parallel.prefixKey must be a session key (32 bytes, base64url).');
  return { relayUrl: p.relayUrl, space, cloud: p.cloud ?? false, ...(host ? { host } : {}), ...(p.maxCostUsd !== undefined ? { maxCostUsd: p.maxCostUsd } : {}), ...(p.prefixKey !== undefined ? { prefixKey: p.prefixKey } : {}) };
}

/** Where relayChildren sends the children; with the session's key, first to the nodes that hold the parent's prompt. */
function childrenWhere({ prefixKey, ...where }: ParallelOptions, store: Store): Omit<ParallelOptions, 'prefixKey'> & Pick<RelayChildrenOptions, 'prefix'> {
  if (prefixKey === undefined) return where;
  const key = fromBase64Url(prefixKey);
  // Keyed with the parent's key, as the nodes that ran it list what it left in their caches.
  return { ...where, prefix: (parent) => parentPrefix(store, parent, key) };
}

/** Unwraps a Result from the worker: the value, or the FerryError it carried. */
export function unwrap<T>(result: Result<T>): T {
  if ('error' in result) throw FerryError.fromJSON(result.error);
  return result.ok;
}

async function settle<T>(run: () => Promise<T>): Promise<Result<T>> {
  try {
    return { ok: await run() };
  } catch (err) {
    const ferry = err instanceof FerryError ? err : new FerryError('runtime/failed', err instanceof Error ? err.message : String(err), { cause: err });
    return { error: ferry.toJSON() };
  }
}
