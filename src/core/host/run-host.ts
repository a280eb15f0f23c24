/**
 * A node's runs — the one implementation shared by the relay's embedded cloud worker, `ferry worker` processes
 * attached from elsewhere, and browsers offering themselves as nodes; only where events go differs (a RunSink). A run resumes a
 * published snapshot with the session key the user handed it, runs the agent (AgentRuntime: checkpoint after every
 * step), publishes every checkpoint back to the same snapshot so the device can follow and take it back — and so
 * another worker can take it over after a failure — and reports every event through its sink.
 * Stop (hand back): the generation in flight is cancelled, the step completes and is checkpointed, published, and
 * the run ends "stopped". Abandon (the relay gave the run to another worker): it stops at once and publishes and
 * reports nothing more, so two workers never write the same snapshot.
 * KV (issue 6): the checkpoint that ends a run (stop, idle, done) carries the session's KV where the engine can
 * save it and it pays (kv-handoff.ts), and a run that resumes a session with a matching KV loads it instead of
 * prefilling the transcript; a `kv` event says which.
 * Keys (DESIGN §9): a run arrives with the session key sealed to this host's public key (`keys`, announced when it
 * attached); the host opens it, opens the sealed input, and seals every event it reports with the session key, so
 * the relay carries the run without reading it. The key and write token live only in this run's memory (a warmed
 * session's key until the run it was warmed for takes it, a minute at most).
 * Warm (a move that is coming: move-ahead.ts): a `warm` run fetches the session and prefills the prompt still
 * streaming where the session is, then ends; the next run of that snapshot with the same sealed key takes what it
 * fetched (one session at a time) and fetches only what changed since — the cut step.
 */
import { isFerryError } from '../errors.ts';
import type { Engine } from '../llm/engine.ts';
import { kvFormatOf } from '../llm/kv-state.ts';
import {
  ATTEMPT_HEADER,
  RelayHttp,
  attemptHeader,
  fetchSnapshot,
  openRunInput,
  publishSession,
  sealRunEvent,
  type AssignedRun,
  type RunEvent,
  type RunStatus,
  type SealedRunEvent,
  type WorkerKeys,
} from '../protocol/index.ts';
import { deriveSessionKeys, type SessionKeys } from '../snapshot/index.ts';
import { MAX_WIRE_PREFIXES, keyPrefixes, prefixBlockKeys } from '../llm/prefix-keys.ts';
import type { PublishPrevious } from '../protocol/snapshot-sync.ts';
import { hereChildren } from '../parallel/children-here.ts';
import type { ChildProgress } from '../runtime/child-progress.ts';
import { relayChildren } from '../parallel/relay-children.ts';
import type { OpenSocket } from '../parallel/run-follow.ts';
import type { Price } from '../placement/profile.ts';
import type { KvPolicy } from '../runtime/kv-handoff.ts';
import type { LoadedComponent } from '../runtime/load.ts';
import { instantiate } from '../runtime/instance.ts';
import { AgentRuntime, localTool, sessionSampling, type RuntimeSetup, type ToolSlot } from '../runtime/runtime.ts';
import { prefillCut, prefillIds } from '../runtime/prefill-ahead.ts';
import { preparePrompt } from '../llm/prompt.ts';
import { Spares } from '../runtime/spares.ts';
import { Session } from '../session/index.ts';
import { RuntimeRunner } from './runtime-runner.ts';
import { createMemoryStore, type Store } from '../store/index.ts';

export type { RunEvent };

/**
 * Where a run's events (sealed, in order) and its end go: the run log in the relay's process, or the socket to the
 * relay. A failure's code and message travel with the end (the relay logs them as the run's error).
 */
export interface RunSink {
  emit(event: SealedRunEvent): void;
  finish(status: RunStatus, error?: { code: string; message: string }): void;
}

export interface RunHostOptions {
  engine: Engine;
  /** This host's key pair: runs arrive with their session key sealed to its public key. */
  keys: WorkerKeys;
  /**
   * The component build with this id (the session names its components by id, which pins their bytes). A build it
   * does not have is loaded from the session, which carries it (runtime/builds.ts).
   */
  load(id: string): Promise<LoadedComponent>;
  /** Whether this host ships build `id` (its bytes are then not fetched with a session); default: none. */
  hasBuild?: (id: string) => boolean;
  /** How tools run; default: in this thread (RuntimeSetup.startTool). */
  startTool?: RuntimeSetup['startTool'];
  /** How the worker reaches the relay's API. */
  relayUrl: () => string;
  /** KV shipping; default: save at hand-back and finish, load where it pays. Pass the profile's prefillTps. */
  kv?: KvPolicy;
  /** This node's relay worker id once attached: a parent run here keeps its own slot out of its children's lanes. */
  self?: () => string | undefined;
  /** How a parent run here follows its children's runs; default the platform's WebSocket (Node 20 has none). */
  openSocket?: OpenSocket;
  /** What this node charges for tokens (`ferry worker --price`): recorded as each step's cost in its checkpoint. */
  price?: Price;
  /**
   * Prefill a reply cut by a move while the runtime opens (runtime/prefill-ahead.ts); default true. False: the
   * continuation prefills once the runtime is open.
   */
  prefillAhead?: boolean;
  /** Told how each run went (its input, steps and publishes), for the operator's log. */
  log?(message: string, details: Record<string, unknown>): void;
}

/** Sessions whose prefixes a node remembers (more than its slots: a slot keeps a session's KV until another takes it). */
const MAX_HELD_SESSIONS = 64;

interface ActiveRun {
  abort: AbortController;
  /** Set once the relay has given this run to someone else: nothing more is published or reported. */
  abandoned: boolean;
  /** Set when the worker is leaving: the run checkpoints and publishes, but its end is not reported (it moves on). */
  draining: boolean;
  done: Promise<void>;
}

/** How long a warmed session waits for its move before it is let go. */
const WARM_MS = 60_000;

/** What a `warm` run leaves for the resume that follows: the snapshot fetched into a store, its key, the prompt prefilled. */
interface Warmed {
  snapshot: string;
  sessionId: string;
  /** The ids evaluated into the session's slot (empty when the prompt could not be). */
  prompt: number[];
  /** The key as it came sealed to this host (startSealedRun seals it once per snapshot), and opened. */
  sealed: string;
  key: Uint8Array;
  store: Store;
  version: number;
  timer: ReturnType<typeof setTimeout>;
}

export class RunHost {
  private readonly active = new Map<string, ActiveRun>();
  /** Fresh instances made while idle, taken by the next run of the same builds (spares.ts). */
  private readonly spareTools: Spares<ToolSlot>;
  private readonly spareAgents = new Spares(instantiate);
  /** Set by close() and drain(): no spares are made for runs that will not come. */
  private closing = false;
  /** Sessions run here lately, newest last, with their keys: whose KV prefixes this node reports (heldPrefixes). */
  private readonly held = new Map<string, SessionKeys>();
  #prefixes: readonly string[] = [];
  /** The refresh computing now, and the one queued behind it (every caller meanwhile shares it): one at a time, the latest state last. */
  #refreshing: Promise<readonly string[]> | undefined;
  #queued: Promise<readonly string[]> | undefined;
  readonly #prefixListeners = new Set<(keys: readonly string[]) => void>();
  /** The session a `warm` run made ready for the move that follows it (move-ahead.ts). */
  #warm: Warmed | undefined;

  constructor(private readonly opts: RunHostOptions) {
    this.spareTools = new Spares(opts.startTool ?? ((component, grants) => localTool(component, grants)), (tool) => tool.dispose?.());
  }

  get engine(): Engine {
    return this.opts.engine;
  }

  /** What a run's session key is sealed to for this host (announced when it attaches). */
  get publicKey(): string {
    return this.opts.keys.publicKey;
  }

  /**
   * Starts the run in the background; its sink hears how it goes. `attempt` (the relay's count of assignments of
   * this run) goes with every publish, so the relay refuses this worker's checkpoints once it has moved the run on.
   */
  start(runId: string, request: AssignedRun, sink: RunSink, attempt?: number): void {
    const entry: ActiveRun = { abort: new AbortController(), abandoned: false, draining: false, done: Promise.resolve() };
    const guarded: RunSink = {
      emit: (event) => void (entry.abandoned || sink.emit(event)),
      finish: (status, error) => void (entry.abandoned || entry.draining || sink.finish(status, error)),
    };
    const fence = attempt === undefined ? undefined : attemptHeader(runId, attempt);
    entry.done = this.run(runId, request, entry, guarded, fence).finally(() => this.active.delete(runId));
    this.active.set(runId, entry);
  }

  /**
   * The prefixes of the KV that sessions run here left in the engine's slots, keyed by each session's prefix key
   * (keyPrefixes): what this node reports in the worker list so that whoever holds a session's key — its device, a
   * parent placing its children — can see that a fork's prefix is here. Never another session's prefixes under a
   * session's key: a key holder could then confirm any guessed prompt cached here. Newest sessions first, bounded.
   * As of the last refreshPrefixes().
   */
  get heldPrefixes(): readonly string[] {
    return this.#prefixes;
  }

  /** Tells `listener` heldPrefixes after every refresh (a node link reports them to its relay); returns its removal. */
  onPrefixes(listener: (keys: readonly string[]) => void): () => void {
    this.#prefixListeners.add(listener);
    return () => void this.#prefixListeners.delete(listener);
  }

  /**
   * Recomputes heldPrefixes from what the engine's slots hold now, and tells the listeners. Coalesced: one refresh
   * at a time; a call while one runs gets the next one, which starts when it ends and reads the slots then.
   */
  refreshPrefixes(): Promise<readonly string[]> {
    if (this.#queued) return this.#queued;
    const start = (): Promise<readonly string[]> => {
      this.#queued = undefined;
      const run = this.#computePrefixes();
      this.#refreshing = run;
      void run.finally(() => {
        if (this.#refreshing === run) this.#refreshing = undefined;
      }).catch(() => undefined);
      return run;
    };
    if (!this.#refreshing) return start();
    this.#queued = this.#refreshing.then(start, start);
    return this.#queued;
  }

  async #computePrefixes(): Promise<readonly string[]> {
    const out: string[] = [];
    for (const [session, keys] of [...this.held].reverse()) {
      const tokens = this.opts.engine.slotTokens?.(session);
      if (!tokens) {
        this.held.delete(session);
        continue;
      }
      const blocks = prefixBlockKeys(tokens).slice(0, MAX_WIRE_PREFIXES - out.length);
      out.push(...(await keyPrefixes(keys.prefixes, blocks)));
      if (out.length >= MAX_WIRE_PREFIXES) break;
    }
    this.#prefixes = out;
    for (const listener of this.#prefixListeners) listener(out);
    return out;
  }

  /** Asks a run to hand back: it checkpoints and publishes its current step, then ends as "stopped". */
  async stop(runId: string): Promise<boolean> {
    const run = this.active.get(runId);
    if (!run) return false;
    run.abort.abort();
    await run.done;
    return true;
  }

  /** Drops a run the relay no longer assigns to this worker: it stops without publishing or reporting anything. */
  abandon(runId: string): void {
    const run = this.active.get(runId);
    if (!run) return;
    run.abandoned = true;
    run.abort.abort();
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([...this.active.keys()].map((id) => this.stop(id)));
    await Promise.all([this.spareTools.dispose(), this.spareAgents.dispose()]);
  }

  /**
   * The worker is leaving on purpose (SIGTERM): every run cuts its step, checkpoints and publishes it, but does not
   * report an end — the relay sees the worker go and hands each run to another, which continues from that checkpoint.
   */
  async drain(): Promise<void> {
    this.closing = true;
    for (const run of this.active.values()) run.draining = true;
    await Promise.all([...this.active.values()].map((run) => (run.abort.abort(), run.done)));
    await Promise.all([this.spareTools.dispose(), this.spareAgents.dispose()]);
  }

  /**
   * A run placed with a children scope, or in a space, splits its big steps across that space's nodes (context
   * parallelism), as the device would have: the children go where the placement's scope says (the sender's privacy
   * and budget), or else where the run itself may go — the space's devices, and the cloud unless it is ruled out.
   * Otherwise they run here, one by one. Their progress streams with the run's events either way.
   */
  private children(request: AssignedRun, sampling: RuntimeSetup['sampling'], report: (event: RunEvent) => void, keys: SessionKeys): Pick<RuntimeSetup, 'runChildren'> {
    const where = request.where;
    const scope = where?.children ?? (where?.space ? { space: where.space, cloud: where.cloud !== false } : undefined);
    const onProgress = (progress: ChildProgress) => report({ type: 'child-progress', progress });
    if (!scope) return { runChildren: hereChildren(onProgress) };
    const self = this.opts.self?.();
    return {
      runChildren: relayChildren({
        relayUrl: this.opts.relayUrl(),
        space: scope.space,
        cloud: scope.cloud,
        ...(scope.maxCostUsd !== undefined ? { maxCostUsd: scope.maxCostUsd } : {}),
        setup: { engine: this.opts.engine, load: (id) => this.opts.load(id), ...(sampling ? { sampling } : {}) },
        ...(this.opts.openSocket ? { openSocket: this.opts.openSocket } : {}),
        ...(self ? { host: self } : {}),
        // The children share the parent's prompt: keyed with the parent's key, as nodes that ran it list it.
        prefix: async (parent) => {
          const tokens = this.opts.engine.slotTokens?.(parent);
          return tokens ? { keys: await keyPrefixes(keys.prefixes, prefixBlockKeys(tokens).slice(0, MAX_WIRE_PREFIXES)), promptTokens: tokens.length } : undefined;
        },
        onProgress,
      }),
    };
  }

  /** Keeps what a warm run made ready (one session at a time: a newer warm replaces an older one). */
  #keepWarm(warm: Omit<Warmed, 'timer'>): void {
    if (this.#warm) clearTimeout(this.#warm.timer);
    const timer = setTimeout(() => {
      if (this.#warm?.timer === timer) this.#warm = undefined;
    }, WARM_MS);
    (timer as { unref?: () => void }).unref?.();
    this.#warm = { ...warm, timer };
  }

  /** The session warmed for `request` (its snapshot, its sealed key), taken: a warm serves one run. */
  #takeWarm(request: AssignedRun): Warmed | undefined {
    const warm = this.#warm;
    if (warm?.snapshot !== request.snapshot || warm.sealed !== request.key) return undefined;
    this.#warm = undefined;
    clearTimeout(warm.timer);
    return warm;
  }

  private async run(runId: string, request: AssignedRun, entry: ActiveRun, sink: RunSink, fence: string | undefined): Promise<void> {
    const signal = entry.abort.signal;
    let runtime: AgentRuntime | undefined;
    // Events are sealed and reported in order; the end is reported after every event before it.
    let reported: Promise<void> = Promise.resolve();
    let report: (event: RunEvent) => void = () => undefined;
    // The prefixes it left are reported before its end, so whoever sees the end sees them in the worker list.
    const finish = (status: RunStatus, error?: { code: string; message: string }): void =>
      void (reported = reported.then(() => this.refreshPrefixes().catch(() => undefined)).then(() => sink.finish(status, error)));
    try {
      const relay = new RelayHttp({ baseUrl: this.opts.relayUrl(), ...(fence ? { fetch: fenced(fence) } : {}) });
      const kv: KvPolicy = { save: true, ...this.opts.kv };
      // A session warmed for this move holds all but what changed since: only that is fetched.
      const warmed = this.#takeWarm(request);
      const store = warmed?.store ?? createMemoryStore();
      const opening = warmed ? Promise.resolve(warmed.key) : this.opts.keys.open(request.key, request.snapshot);
      // The snapshot is asked for while the key opens. Only the KV this engine can load (none when it loads none):
      // another engine's is a cache it would carry for nothing.
      const fetching = fetchSnapshot(relay, request.snapshot, opening, store, { engine: kv.load === false ? null : kvFormatOf(this.opts.engine.info), ...(this.opts.hasBuild ? { hasBuild: this.opts.hasBuild } : {}), ...(warmed ? { since: warmed.version } : {}) });
      // Awaited below, unless the key or the input fails first: that failure is the run's.
      fetching.catch(() => undefined);
      const key = await opening;
      const keys = await deriveSessionKeys(key);
      report = (event) => {
        reported = reported.then(() => sealRunEvent(keys, runId, event).then((sealed) => sink.emit(sealed), () => undefined));
      };
      const opened = await openRunInput(keys, request.snapshot, request.input);
      // Warmed, the ids generated since the warm go into the slot after its prompt now, while the cut step comes
      // (ids of this engine's tokenizer only: another's would be other words).
      const early = warmed && opened.type === 'continue' && opened.tokenizer === this.opts.engine.info.tokenizerId && this.opts.prefillAhead !== false ? prefillIds(this.opts.engine, [...warmed.prompt, ...opened.tokens], warmed.sessionId, signal) : undefined;
      const fetched = await fetching;
      this.held.delete(fetched.sessionId);
      this.held.set(fetched.sessionId, keys);
      while (this.held.size > MAX_HELD_SESSIONS) this.held.delete(this.held.keys().next().value!);
      report({ type: 'resumed', session: fetched.sessionId, version: fetched.snapshot.version, objects: fetched.sync.objects });
      if (opened.type === 'warm') {
        // Evaluated where the resume will continue it: all of its prompt but the ids generated after the warm.
        const prompt = await preparePrompt(this.opts.engine, opened.prompt).catch(() => []);
        await prefillIds(this.opts.engine, prompt, fetched.sessionId, signal);
        this.#keepWarm({ snapshot: request.snapshot, sealed: request.key, key, store, version: fetched.snapshot.version, sessionId: fetched.sessionId, prompt });
        finish('idle');
        return;
      }
      // The session's own sampling settings (as its head checkpoint recorded them), so the continuation is the one
      // the device would have generated; the reply length is the sender's when it gave one (its Settings now).
      const session = await Session.open(store, fetched.sessionId);
      const head = await session.head();
      // A reply cut by the move is prefilled while the components instantiate, rather than after (prefill-ahead.ts).
      const cut = opened.type === 'resume' || opened.type === 'continue';
      const ahead = cut && this.opts.prefillAhead !== false ? (early ?? Promise.resolve()).then(() => prefillCut(this.opts.engine, session, head, fetched.sessionId, kv, signal)) : undefined;
      const sampling = sessionSampling((await session.checkpoint(head)).llm, request.maxTokens);
      const setup: RuntimeSetup = { engine: this.opts.engine, load: (id) => this.opts.load(id), sampling, kv, startTool: this.spareTools.take, startAgent: this.spareAgents.take, ...this.children(request, sampling, report, keys), ...(this.opts.price ? { price: this.opts.price } : {}) };
      runtime = await AgentRuntime.open(store, setup, fetched.sessionId);
      await ahead;
      // This run is the snapshot's only writer: each publish goes on from where the last one left it, unread.
      const tally = { checkpoints: 0, published: 0 };
      let published: PublishPrevious = { snapshotId: request.snapshot, writeToken: request.writeToken, key, base: fetched.base };
      const publish = async (): Promise<void> => {
        if (entry.abandoned) return;
        const result = await publishSession(store, fetched.sessionId, relay, published);
        published = { snapshotId: result.snapshot.id, writeToken: result.writeToken, key, base: result.base };
        if (result.unchanged) return;
        tally.published++;
        report({ type: 'published', version: result.snapshot.version, objects: result.sync.objects, bytes: result.sync.totalBytes });
      };
      const input = opened.type === 'user' ? { type: 'user' as const, text: opened.text } : opened.type === 'start' ? { type: 'start' as const, task: opened.task } : { type: 'resume' as const };
      // Each checkpoint is published before the next step starts: losing this node then loses nothing before it.
      const runner = new RuntimeRunner(runtime, async (event) => {
        report(event as unknown as RunEvent);
        // What a generation left in the engine's slot is listed while the run goes on, not only at its end.
        if (event.type === 'generation') this.refreshPrefixes().catch(() => undefined);
        if (event.type === 'checkpoint') tally.checkpoints++;
        if (event.type === 'checkpoint' || event.type === 'step-failed') await publish();
      });
      const stop = (): void => void runner.stop();
      const sent = runner.send(input);
      // Stopped before it began: the input is still taken and checkpointed, its generation cut at once.
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
      try {
        await sent;
      } finally {
        signal.removeEventListener('abort', stop);
      }
      const state = runtime.loopState;
      this.opts.log?.('run summary', { run: runId, input: opened.type, ...tally, loop: state.status, pending: state.pending.length, stopped: signal.aborted });
      finish(signal.aborted ? 'stopped' : state.status === 'done' ? 'done' : 'idle');
    } catch (err) {
      const error = isFerryError(err) ? { code: err.code, message: err.message } : { code: 'relay/worker-failed', message: err instanceof Error ? err.message : String(err) };
      finish('failed', error);
    } finally {
      const tools = runtime?.tools.map((t) => t.componentId) ?? [];
      const agent = runtime?.agentComponent;
      await runtime?.dispose().catch(() => undefined);
      // Ready for the next run, made now that this one no longer waits on the CPU.
      if (!this.closing && agent) this.spareAgents.refill([agent]);
      if (!this.closing) void Promise.all(tools.map((id) => this.opts.load(id))).then((c) => this.closing || this.spareTools.refill(c), () => undefined);
    }
    await reported;
  }
}

/** fetch with this attempt's header on every request (the relay checks it on publishes). */
function fenced(value: string): typeof fetch {
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set(ATTEMPT_HEADER, value);
    return globalThis.fetch(input, { ...init, headers });
  };
}
