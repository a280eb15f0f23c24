/**
 * The agent runtime: an agent component, its tools and an Engine, run by the action loop, checkpointed into a
 * session after every step. Fork, switch branch and rollback restore every component from the checkpoint into
 * fresh state; a step whose tool call fails as a call (a trap, the time or memory limit) is rolled back to the last
 * checkpoint and reported, and the session goes on. The same class runs in a Web Worker (workers/agent.worker.ts)
 * and in Node worker_threads (server/runtime/).
 */
import { FerryError, type SerializedError } from '../errors.ts';
import type { Engine } from '../llm/engine.ts';
import type { EngineSwitch } from '../llm/fallback-engine.ts';
import { kvFormatOf } from '../llm/kv-state.ts';
import { tokensCostUsd, type Price } from '../placement/profile.ts';
import { newSessionId, Session, type LlmSettings } from '../session/index.ts';
import type { ObjectId, Store } from '../store/index.ts';
import { Checkpointer, instanceState, keyframes, LOOP_COMPONENT, readChain, readHostState, encodeHostState, type HostState, type StatefulComponent } from './checkpoint.ts';
import { instantiate, type ComponentInstance, type Grants } from './instance.ts';
import { captureKv, kvComponentName, restoreKv, type KvEvent, type KvPolicy } from './kv-handoff.ts';
import type { LoadedComponent } from './load.ts';
import type { ChildProgress } from './child-progress.ts';
import { AgentLoop, addUsage, DEFAULT_SAMPLING, type LoopEvent, type LoopState, type ChildSpend, type RunInput, type Sampling, type StreamingGeneration, type TokenUsage, type ToolHost } from './loop.ts';
import { blobHeader } from './state-codec.ts';
import { buildComponentName, isSessionPrivate } from '../snapshot/index.ts';
import { encodeBuild, loadSessionBuild } from './builds.ts';
import { inProcessTool, toolLimits, type ToolLimits } from './tools.ts';
import { agentOf, type ChildResult, type SubTask } from './wit.ts';

/** A tool as the runtime holds it: callable, and checkpointed. */
export interface ToolSlot extends ToolHost, StatefulComponent {
  dispose?(): Promise<void>;
}

/** A tool component instance in this thread (no time limit: see tool-worker.ts for isolated tools). */
export async function localTool(component: LoadedComponent, grants: Grants, limits: Partial<ToolLimits> = {}): Promise<ToolSlot> {
  const instance = await instantiate(component, grants);
  const host = inProcessTool(instance, toolLimits(component.manifest, limits));
  const state = instanceState(`tool.${host.info.name}`, instance);
  return { info: host.info, invoke: host.invoke, name: state.name, componentId: state.componentId, capture: state.capture, restore: state.restore };
}

export interface RuntimeSetup {
  engine: Engine;
  sampling?: Partial<Sampling>;
  /** Loads a component build by id (from a folder, a URL, the store): the id pins its bytes (load.ts). */
  load: (componentId: string) => Promise<LoadedComponent>;
  /** Host imports by WIT interface name; each component receives only those it declares. */
  grants?: Grants;
  /** Starts a tool; default: in this thread. A worker host (tool-worker.ts) adds the time limit. */
  startTool?: (component: LoadedComponent, grants: Grants) => Promise<ToolSlot>;
  /** Makes the session's agent instance; default `instantiate`. A host may hand out one made ahead (spares.ts). */
  startAgent?: (component: LoadedComponent, grants: Grants) => Promise<ComponentInstance>;
  maxStepsPerRun?: number;
  now?: () => number;
  /**
   * Accelerator state across hosts (kv-handoff.ts). When set, generations use the session id as the engine's KV
   * slot, a session opened here loads a matching saved KV (unless `load: false`), and with `save: true` the
   * checkpoint that ends a run carries the slot's KV. Absent: no slot, no KV shipping (re-prefill, as before).
   */
  kv?: KvPolicy;
  /**
   * Runs a step's forked children: one after another in this runtime (parallel/children-here.ts), or as child
   * sessions on the space's nodes (parallel/relay-children.ts). Absent: the agent is told children cannot run here.
   */
  runChildren?: RunChildren;
  /**
   * What this engine's tokens cost the session's owner (a paid worker's price): each checkpoint's counters record
   * what its step cost. Absent: free (the user's own hardware).
   */
  price?: Price;
}

/**
 * What a children runner knows of the parent: its components (a child runs the same ones) and its session, whether
 * that session is private (its children then stay on this device); and `localLoop`, a fresh loop of the parent's
 * agent build with its tools, engine and sampling, for a child run in this runtime (its steps add what they read
 * and wrote to `usage`).
 */
export interface ChildContext {
  agent: string;
  tools: readonly string[];
  parent: string;
  private: boolean;
  localLoop(usage: TokenUsage): Promise<AgentLoop>;
}

/** Runs a step's children; adds what they cost to `spent`, which the forking step records as its own. */
export type RunChildren = (tasks: readonly SubTask[], context: ChildContext, signal: AbortSignal | undefined, spent: ChildSpend) => Promise<ChildResult[]>;

export type RuntimeEvent =
  | LoopEvent
  /** Whether the session's KV was loaded from its checkpoint or will be prefilled (and why), or saved into one. */
  | KvEvent
  /** A step failed as a whole; the session was restored to `restoredTo` and goes on without that step. */
  | { type: 'step-failed'; step: number; error: SerializedError; restoredTo: ObjectId }
  /** Where forked children run elsewhere: which started, finished, or moved on, on which node. */
  | { type: 'child-progress'; progress: ChildProgress }
  /** The engine is loading its model in the worker (web-llm's download and compile), `progress` from 0 to 1. */
  | { type: 'engine-loading'; progress: number; text: string }
  /** The engine handed over to its fallback (web-llm → wllama), on load or mid-reply; `change.message` says why. */
  | { type: 'engine-switch'; change: EngineSwitch };

export interface CreateOptions {
  agent: string;
  tools?: readonly string[];
  sessionId?: string;
  branch?: string;
}

interface Parts {
  agentComponent: LoadedComponent;
  agent: StatefulComponent;
  tools: ToolSlot[];
  loop: AgentLoop;
  /** The builds it runs (the agent's, then each tool's): each checkpoint carries their bytes (builds.ts). */
  builds: LoadedComponent[];
}

/** The session's entries for the builds it runs, as a checkpoint carries them. */
function buildEntries(builds: readonly LoadedComponent[]): Record<string, Uint8Array> {
  return Object.fromEntries(builds.map((b) => [buildComponentName(b.id), encodeBuild(b.files)]));
}

export class AgentRuntime {
  #parts: Parts;
  #checkpointer: Checkpointer;
  #running = false;
  /** The checkpoint the live state equals (the branch head after every step). */
  #at: ObjectId;
  /** The checkpoint whose saved KV the next run loads first (set when a session is opened). */
  #kvFrom: ObjectId | undefined;
  /** The current run's signal: a step after which it is aborted ends the run (where KV is saved). */
  #signal: AbortSignal | undefined;
  /** KV events from the step hook, streamed right after that step's checkpoint event. */
  #kvEvents: KvEvent[] = [];
  /** Build entries the head checkpoint lacks (a session made before checkpoints carried them): the next one adds them. */
  #missingBuilds: Record<string, Uint8Array> = {};
  /** Step figures of the last run, for benchmarks: the checkpoint's own time and bytes. */
  readonly stats: { checkpointMs: number[]; stateBytes: number[]; overheadMs: number[] } = { checkpointMs: [], stateBytes: [], overheadMs: [] };

  #session: Session;

  private constructor(
    session: Session,
    private readonly setup: RuntimeSetup,
    parts: Parts,
    at: ObjectId,
  ) {
    this.#session = session;
    this.#parts = parts;
    this.#at = at;
    this.#checkpointer = new Checkpointer(session, [parts.agent, ...parts.tools]);
  }

  /** A new session: fresh components, the first checkpoint holding their initial state. */
  static async create(store: Store, setup: RuntimeSetup, options: CreateOptions): Promise<AgentRuntime> {
    const sessionId = options.sessionId ?? newSessionId();
    const parts = await build(setup, store, sessionId, options.agent, options.tools ?? []);
    const components: Record<string, Uint8Array> = { ...(await keyframes([parts.agent, ...parts.tools])), ...buildEntries(parts.builds) };
    components[LOOP_COMPONENT] = encodeHostState(hostState(parts));
    const session = await Session.create(store, {
      llm: llmSettings(setup),
      components,
      id: sessionId,
      ...(options.branch ? { branch: options.branch } : {}),
      ...(setup.now ? { now: setup.now() } : {}),
    });
    const runtime = new AgentRuntime(session, setup, parts, await session.head());
    runtime.#resumeChains([parts.agent, ...parts.tools].map((c) => [components[`${c.name}/key`]!]));
    return runtime;
  }

  /**
   * Opens a stored session on its current branch: fresh instances, restored from the head checkpoint. A build this
   * host does not have is loaded from the session, which carries it: the session keeps running the build it started
   * with, and samples as it recorded (setup.sampling gives only the reply length; see sessionSampling).
   */
  static async open(store: Store, given: RuntimeSetup, sessionId: string): Promise<AgentRuntime> {
    const session = await Session.open(store, sessionId);
    const head = await session.head();
    const setup: RuntimeSetup = { ...given, sampling: sessionSampling((await session.checkpoint(head)).llm, given.sampling?.maxTokens) };
    const host = await readHostState(session, head);
    const parts = await build(setup, store, sessionId, host.agent, host.tools.map((t) => t.component), undefined, { session, at: head });
    const runtime = new AgentRuntime(session, setup, parts, head);
    await runtime.#restoreInto(parts, head, host);
    // Loaded at the start of the first run, so opening stays cheap and the outcome streams as a run event.
    if (setup.kv) runtime.#kvFrom = head;
    return runtime;
  }

  get session(): Session {
    return this.#session;
  }

  get head(): ObjectId {
    return this.#at;
  }

  get loopState(): LoopState {
    return this.#parts.loop.state;
  }

  /** The generation streaming now, if one is. */
  get generating(): StreamingGeneration | undefined {
    return this.#parts.loop.generating;
  }

  get tools(): readonly ToolSlot[] {
    return this.#parts.tools;
  }

  /** The agent's component build. */
  get agentComponent(): LoadedComponent {
    return this.#parts.agentComponent;
  }

  /** Runs the agent on `input`, checkpointing after every step; streams what happens. */
  async *run(input: RunInput, signal?: AbortSignal): AsyncGenerator<RuntimeEvent, LoopState> {
    this.#enter();
    this.#signal = signal;
    try {
      try {
        yield* this.#loadKv();
        const events = this.#parts.loop.run(input, signal);
        for (;;) {
          const next = await events.next();
          if (next.done) return next.value;
          yield next.value;
          yield* this.#kvEvents.splice(0);
        }
      } catch (err) {
        if (!(err instanceof FerryError && err.code === 'runtime/step-failed')) throw err;
        const restoredTo = await this.#recover();
        yield { type: 'step-failed', step: Number(err.details?.step ?? 0), error: err.toJSON(), restoredTo };
        return this.#parts.loop.state;
      }
    } finally {
      this.#running = false;
      this.#signal = undefined;
    }
  }

  /** Once after open: the saved KV into this engine's slot where it matches and pays, else re-prefill; says which. */
  async *#loadKv(): AsyncGenerator<KvEvent> {
    const at = this.#kvFrom;
    this.#kvFrom = undefined;
    if (!at || !this.setup.kv) return;
    const event = await restoreKv(this.setup.engine, this.session.id, this.session, at, this.setup.kv);
    if (event) yield event;
  }

  /**
   * The session moved on in the store without this runtime — whoever else holds the store forked, rolled back or
   * switched branch there, or checkpoints arrived from where the session ran meanwhile: every component is restored
   * to the store's head on its current branch. Resolves false when nothing had moved. A head made by other component
   * builds is refused (`runtime/other-build`): open the session anew.
   */
  async reload(): Promise<boolean> {
    this.#enter();
    try {
      const session = await Session.open(this.#session.store, this.#session.id);
      const head = await session.head();
      if (session.branch === this.#session.branch && head === this.#at) return false;
      this.#session = session;
      this.#checkpointer = new Checkpointer(session, [this.#parts.agent, ...this.#parts.tools]);
      await this.#restoreAt(head);
      // Checkpoints that arrived from where the session ran may carry that engine's KV: loaded before the next run.
      if (this.setup.kv) this.#kvFrom = head;
      return true;
    } finally {
      this.#running = false;
    }
  }

  async dispose(): Promise<void> {
    await Promise.all(this.#parts.tools.map((t) => t.dispose?.()));
  }

  #enter(): void {
    if (this.#running) throw new FerryError('runtime/busy', 'The agent is busy with another operation; wait for it or cancel the run.');
    this.#running = true;
  }

  /** After a failed step: every component back to the last checkpoint; the failed input is dropped, recorded in a new checkpoint. */
  async #recover(): Promise<ObjectId> {
    const last = this.#at;
    await this.#restoreAt(last);
    const state = this.#parts.loop.state;
    state.pending = state.pending.slice(1);
    state.status = state.pending.length > 0 ? 'running' : 'idle';
    this.#parts.loop.setState(state);
    const result = await this.#checkpointer.append({ events: [], host: { ...hostState(this.#parts), loop: state } });
    this.#at = result.id;
    return last;
  }

  async #restoreAt(at: ObjectId): Promise<void> {
    const host = await readHostState(this.session, at);
    const sameBuild = host.agent === this.#parts.agentComponent.id && host.tools.length === this.#parts.tools.length &&
      host.tools.every((t, i) => t.component === this.#parts.tools[i]!.componentId);
    if (!sameBuild) {
      throw new FerryError('runtime/other-build', `Checkpoint ${at} was made by other component builds than this runtime runs; open the session anew to restore it.`);
    }
    // Fresh state for everything: a restore never trusts what the live instances hold.
    const old = this.#parts;
    const parts = await build(this.setup, this.session.store, this.session.id, host.agent, host.tools.map((t) => t.component), old.agentComponent, { session: this.session, at });
    try {
      await this.#restoreInto(parts, at, host);
    } catch (err) {
      await Promise.all(parts.tools.map((t) => t.dispose?.()));
      throw err;
    }
    await Promise.all(old.tools.map((t) => t.dispose?.()));
  }

  async #restoreInto(parts: Parts, at: ObjectId, host: HostState): Promise<void> {
    const components = [parts.agent, ...parts.tools];
    // One after another: the walks share the session's decoded checkpoints.
    const chains: Uint8Array[][] = [];
    for (const component of components) chains.push(await readChain(this.session, at, component.name));
    await Promise.all(components.map((component, i) => component.restore(chains[i]!)));
    const carried = (await this.session.checkpoint(at)).components;
    this.#missingBuilds = buildEntries(parts.builds.filter((b) => !(buildComponentName(b.id) in carried)));
    parts.loop.setState(host.loop);
    this.#parts = parts;
    this.#checkpointer.reset(components);
    this.#at = at;
    this.#resumeChains(chains);
  }

  /** Continues each component's delta chain (`chains`, in component order) rather than starting a keyframe. */
  #resumeChains(chains: readonly (readonly Uint8Array[])[]): void {
    [this.#parts.agent, ...this.#parts.tools].forEach((component, i) => {
      const chain = chains[i]!;
      const key = blobHeader(chain[0]!);
      this.#checkpointer.resume(component.name, { chain: key.chain, seq: chain.length - 1, keyBytes: chain[0]!.length, deltaBytes: chain.slice(1).reduce((n, b) => n + b.length, 0) });
    });
    this.#parts.loop.onStep = (record) => this.#afterStep(record);
  }

  async #afterStep(record: Parameters<NonNullable<AgentLoop['onStep']>>[0]): Promise<string> {
    const t0 = performance.now();
    const kv = await this.#kvAtEnd(record.state);
    const extra = { ...this.#missingBuilds, ...(kv ? { [kvComponentName(kvFormatOf(this.setup.engine.info))]: kv.entry } : {}) };
    const result = await this.#checkpointer.append({
      events: record.events,
      host: { ...hostState(this.#parts), loop: record.state },
      timeMs: record.timing.totalMs,
      costMicros: (this.setup.price ? costMicros(this.setup.price, record.usage) : 0) + record.childCostMicros,
      ...(Object.keys(extra).length > 0 ? { extra } : {}),
    });
    this.#missingBuilds = {};
    if (kv) this.#kvEvents.push(kv.event);
    this.#at = result.id;
    this.stats.checkpointMs.push(performance.now() - t0);
    this.stats.stateBytes.push(result.stateBytes);
    const { totalMs, modelMs, toolMs, agentMs } = record.timing;
    this.stats.overheadMs.push(Math.max(0, totalMs - modelMs - toolMs - agentMs));
    return result.id;
  }

  /**
   * The slot's KV for the checkpoint of a step that ends the run (stopped, idle, done) when the policy saves it:
   * only there, since a KV state can be MBs and every step's checkpoint must stay small.
   */
  async #kvAtEnd(state: LoopState): Promise<Awaited<ReturnType<typeof captureKv>>> {
    if (!this.setup.kv?.save) return null;
    if (!this.#signal?.aborted && state.status === 'running') return null;
    return captureKv(this.setup.engine, this.session.id, this.setup.kv);
  }
}

/** A step's cost in whole micro-dollars, the counters' unit. */
function costMicros(price: Price, usage: TokenUsage): number {
  return Math.round(tokensCostUsd(price, usage.promptTokens, usage.outputTokens) * 1e6);
}

/**
 * A build by id: this host's (setup.load), else the one checkpoint `from.at` of the session carries (an older build
 * the host no longer ships); the host's refusal when the session carries none either.
 */
async function loadBuild(setup: RuntimeSetup, id: string, from: { session: Session; at: ObjectId } | undefined): Promise<LoadedComponent> {
  try {
    return await setup.load(id);
  } catch (err) {
    const carried = from && (await loadSessionBuild(from.session, from.at, id));
    if (carried) return carried;
    throw err;
  }
}

async function build(setup: RuntimeSetup, store: Store, sessionId: string, agentId: string, toolIds: readonly string[], agentComponent?: LoadedComponent, from?: { session: Session; at: ObjectId }): Promise<Parts> {
  const grants = setup.grants ?? {};
  const component = agentComponent?.id === agentId ? agentComponent : await loadBuild(setup, agentId, from);
  if (component.manifest.world !== 'agent' && component.manifest.world !== 'stateful-agent') {
    throw new FerryError('component/wrong-world', `Component "${component.manifest.name}" is built for world "${component.manifest.world}", not "agent"; it cannot run as the agent.`);
  }
  const instance = await (setup.startAgent ?? instantiate)(component, grants);
  const startTool = setup.startTool ?? ((c: LoadedComponent, g: Grants) => localTool(c, g));
  const tools: ToolSlot[] = [];
  const builds = [component];
  for (const id of toolIds) {
    const tool = await loadBuild(setup, id, from);
    builds.push(tool);
    tools.push(await startTool(tool, grants));
  }
  const agent = agentOf(instance);
  const base = {
    engine: setup.engine,
    tools,
    ...(setup.sampling ? { sampling: setup.sampling } : {}),
    ...(setup.maxStepsPerRun ? { maxStepsPerRun: setup.maxStepsPerRun } : {}),
    ...(setup.now ? { now: setup.now } : {}),
  };
  // The session's own KV slot only where KV is shipped; children share the base but not the slot (see below).
  const slotted = setup.kv ? { ...base, slot: sessionId } : base;
  // Children run here are fresh agents sharing the tools; their steps are part of the parent's step.
  const context: Omit<ChildContext, 'private'> = {
    agent: component.id,
    tools: [...toolIds],
    parent: sessionId,
    localLoop: async (usage) => new AgentLoop({ ...base, agent: agentOf(await instantiate(component, grants)), afterStep: async (record) => addUsage(usage, record.usage) }),
  };
  const run = setup.runChildren;
  // Whether the session is private is read when its children fork: it may have been marked since the runtime opened.
  const runChildren = run && (async (tasks: readonly SubTask[], signal: AbortSignal | undefined, spent: ChildSpend) =>
    run(tasks, { ...context, private: await isSessionPrivate(store, sessionId) }, signal, spent));
  const loop = new AgentLoop({ ...slotted, agent, ...(runChildren ? { runChildren } : {}) });
  return { agentComponent: component, agent: instanceState('agent', instance), tools, loop, builds };
}

function hostState(parts: Parts): HostState {
  return { loop: parts.loop.state, agent: parts.agentComponent.id, tools: parts.tools.map((t) => ({ name: t.name, component: t.componentId })) };
}

/**
 * How a stored session samples from here on: as its checkpoint recorded (Settings changed since apply to new sessions;
 * its seed and the cut's position continue the same draws on any host), with the host's reply length where it gives one.
 */
export function sessionSampling(recorded: LlmSettings, maxTokens: number | undefined): Sampling {
  const { temperature, topP, topK, seed, minP, repeatPenalty } = recorded.sampling;
  return {
    temperature,
    seed,
    maxTokens: maxTokens ?? recorded.sampling.maxTokens,
    // The neutral values are recorded but were never asked for (settings.ts leaves them out): requests stay as they were.
    ...(topP === 1 ? {} : { topP }),
    ...(topK === 0 ? {} : { topK }),
    ...(minP === undefined ? {} : { minP }),
    ...(repeatPenalty === undefined ? {} : { repeatPenalty }),
  };
}

function llmSettings(setup: RuntimeSetup): LlmSettings {
  const s = { ...DEFAULT_SAMPLING, ...setup.sampling };
  return {
    model: setup.engine.info.model.slice(0, 256),
    tokenizerId: setup.engine.info.tokenizerId.slice(0, 256),
    sampling: {
      temperature: s.temperature,
      topP: s.topP ?? 1,
      topK: s.topK ?? 0,
      seed: s.seed,
      maxTokens: s.maxTokens,
      ...(s.minP === undefined ? {} : { minP: s.minP }),
      ...(s.repeatPenalty === undefined ? {} : { repeatPenalty: s.repeatPenalty }),
    },
  };
}
