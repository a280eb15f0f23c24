/**
 * The page's one live agent: an agent worker (agent-client.ts) running one session at a time against the app's
 * IndexedDB store, with the chosen model, and the SessionMover that moves it to the relay's cloud worker and back.
 *
 * The store is the one source of truth: before every run the host compares the worker's session, branch and head
 * with the store's and reopens the session from the store when they differ (the page forked, rolled back or
 * switched branch; a move brought it back), instead of trusting the worker's copy. Which agent and tools a session
 * runs is read from the store too (its checkpoints name their component builds), never from the catalogue.
 */
import { FerryError } from '../core/errors.ts';
import { blobReader, checkGguf } from '../core/llm/gguf/index.ts';
import { RECENT_REPLIES, expectedReplyTokens } from '../core/placement/index.ts';
import type { AgentStatus, ParallelOptions } from '../core/host/agent-api.ts';
import type { RuntimeEvent } from '../core/runtime/runtime.ts';
import { Session } from '../core/session/index.ts';
import { importSession, storeTarget, syncSession } from '../core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../core/store/index.ts';
import { AgentClient } from './agent-client.ts';
import type { ModelChoice, TemplateId } from './app-state.ts';
import { gpuOffloads, gpuRuns } from './llm/device-probe.ts';
import { openModel } from './llm/model-source.ts';
import { RelayClient } from './relay-client.ts';
import { AutoPlacer, type AutoPlacementContext } from './auto-placement.ts';
import type { ChildrenScope, RunPlacement } from '../core/protocol/index.ts';
import { restoreCloudState, serializeCloudState, SessionMover, type PlacedEvent, type Placement } from './session-mover.ts';
import { sessionAgent, TEMPLATE_PARTS, templateComponents, unknownAgentError } from './template-components.ts';
import type { BrowserEngineSpec, WllamaSpec } from '../../workers/agent.worker.ts';
import type { DownloadProgress } from './llm/model-download.ts';

/** The IndexedDB store the app and the agent worker share (AppState opens the same name). */
const STORE_NAME = 'ferry';
/** What an agent's system prompt and tool schemas take in the context, roughly, tokens. */
const SYSTEM_PROMPT_TOKENS = 512;

/** This device's engine settings: reply length and context size, and the web-llm model for its GPU ('' for none). */
export interface EngineLimits {
  replyTokens: number;
  contextSize: number;
  gpuModel: string;
  ggufOnGpu: boolean;
}

/** What the engine in the agent worker says about itself: loading on the GPU, or handing over to the CPU. */
export type EngineEvent = Extract<RuntimeEvent, { type: 'engine-loading' | 'engine-switch' }>;

export interface AgentHostOptions {
  /** The page's handle on the shared store (for syncing a session that comes back from the cloud). */
  store: Store;
  relay(): string;
  limits(): EngineLimits;
  onEvent(sessionId: string, event: PlacedEvent): void;
  onPlacement(sessionId: string, placement: Placement): void;
  /** Model loading (a download when the cached copy is gone). */
  onModelProgress?(progress: DownloadProgress): void;
  /** The engine's own news (web-llm loading, a fallback to wllama and why), and the GPU model not being used and why. */
  onEngine?(event: EngineEvent | { type: 'engine-unused'; message: string }): void;
  /** Where a session away in the cloud is recorded on this device, for a reload (AppState's "cloud" records). */
  cloudRecord(sessionId: string): Promise<string | undefined>;
  saveCloudRecord(sessionId: string, record: string | null): Promise<unknown>;
  /**
   * What placement may do now (Settings' privacy, objective and budget; this device's space and its own node):
   * automatic moves, and which nodes a step's forked children may run on. Absent: both off (everything here).
   */
  autoPlacement?(): Promise<AutoPlacementContext | undefined>;
  /** The session moved by itself, and why. */
  onAutoMove?(sessionId: string, reason: string): void;
}

interface Live {
  client: AgentClient;
  mover: SessionMover;
  sessionId: string;
  template: TemplateId;
  model: ModelChoice;
  /** Automatic placement of this session, when the app has it on. */
  placer: AutoPlacer | undefined;
}

export class AgentHost {
  #live: Live | undefined;
  #spec: { key: string; spec: Promise<BrowserEngineSpec> } | undefined;
  /** The CPU share this device's generations may use (Settings), applied to every agent worker. */
  #cpuShare = 1;
  /** The settings the live worker's session was started with (#startSettings' key): a change restarts it. */
  #startedWith: string | undefined;

  constructor(private readonly opts: AgentHostOptions) {}

  /** Where the live session runs now; 'device' for any other session. */
  placement(sessionId: string): Placement {
    return this.#live?.sessionId === sessionId ? this.#live.mover.placement : 'device';
  }

  /** Whether a run of the session is going on, in this page's worker or in the cloud (followed here). */
  running(sessionId: string): boolean {
    return this.#live?.sessionId === sessionId && this.#live.mover.running;
  }

  /** Creates a session of `template` in the store: its agent and tools' first state, under the chosen model. */
  async create(template: TemplateId, model: ModelChoice): Promise<{ sessionId: string; agent: string }> {
    this.#refuseIfAway();
    const client = await this.#client(model);
    const { ids } = await templateComponents(template);
    const parts = TEMPLATE_PARTS[template];
    const agent = ids[parts.agent]!;
    const status = await this.#start(client, template, model, { agent, tools: parts.tools.map((t) => ids[t]!) });
    this.#adopt(client, status.sessionId, template, model);
    return { sessionId: status.sessionId, agent };
  }

  /**
   * Runs `text` in session `sessionId`: the task for a session that has not started yet, a message otherwise.
   * Resolves when the run pauses (idle, stopped, moved away).
   */
  async send(sessionId: string, model: ModelChoice, text: string): Promise<void> {
    const body = text.trim();
    if (!body) throw new FerryError('app/empty-message', 'The message is empty; type something to send.');
    const live = await this.#attach(sessionId, model);
    if (live.mover.placement !== 'device') return live.mover.send({ type: 'user', text: body });
    // A generation continuing after a move back finishes first; the message then runs after it.
    await live.mover.settled();
    const status = await live.client.status();
    if (status.state.steps === 0) return live.mover.send({ type: 'start', task: body });
    // A step boundary: the policy may place the next step elsewhere; the idle session moves first, then runs there.
    const placed = await live.placer?.beforeStep();
    if (placed && live.mover.placement === 'device') {
      await this.#move(live.mover, placed.where, placed.decision.estimate.name);
      this.opts.onAutoMove?.(sessionId, placed.decision.reason);
    }
    await live.mover.send({ type: 'user', text: body });
  }

  /**
   * Stops the session's run. Here: a generation in flight ends "stopped" and is checkpointed. In the cloud: the
   * cloud run hands back (checkpoints, publishes) and the session stays there, idle.
   */
  async cancel(sessionId: string): Promise<void> {
    if (this.#live?.sessionId !== sessionId) return;
    await this.#live.mover.stop();
  }

  /** Moves the session to the relay's cloud worker, or where `where` places it (a device of this device's space, `name`). */
  async moveToCloud(sessionId: string, model: ModelChoice, where?: RunPlacement, name?: string): Promise<void> {
    const live = await this.#attach(sessionId, model);
    await this.#move(live.mover, where, name);
  }

  /**
   * Moves the session where `where` places it (`name`: the device's, for people). Its run's forked children go
   * where they would go from here (#startSettings), not one by one on the node it moved to.
   */
  async #move(mover: SessionMover, where: RunPlacement | undefined, name: string | undefined): Promise<void> {
    await mover.moveToCloud(await this.#withChildren(where), name);
  }

  /** `where`, with the scope its run's forked children may use (#move). */
  async #withChildren(where: RunPlacement | undefined): Promise<RunPlacement | undefined> {
    const { parallel } = await this.#startSettings();
    if (!parallel) return where;
    const children: ChildrenScope = { space: parallel.space, cloud: parallel.cloud ?? false, ...(parallel.maxCostUsd !== undefined ? { maxCostUsd: parallel.maxCostUsd } : {}) };
    return { ...where, children };
  }

  /**
   * The session is being deleted on this device. Away in the cloud (or on another device), its run there is handed
   * back — it stays on the relay, idle, from where an undo can follow it again — and it is no longer followed, so
   * nothing of it comes back into the store.
   */
  async release(sessionId: string): Promise<void> {
    const live = this.#live;
    if (live?.sessionId !== sessionId || live.mover.placement === 'device') return;
    this.#live = undefined;
    try {
      await live.mover.stop();
    } finally {
      live.mover.close();
      await live.client.terminate();
    }
  }

  /** The name of the space's device the session is away on; undefined while here or on a cloud worker. */
  awayOn(sessionId: string): string | undefined {
    return this.#live?.sessionId === sessionId ? this.#live.mover.awayOn : undefined;
  }

  /** Caps this device's generations at `fraction` of a CPU, from their next token on. */
  async setCpuShare(fraction: number): Promise<void> {
    this.#cpuShare = fraction;
    await this.#live?.client.setCpuShare(fraction);
  }

  async bringBack(sessionId: string): Promise<void> {
    if (this.#live?.sessionId !== sessionId) throw new FerryError('relay/move-busy', 'This session is not in the cloud; there is nothing to bring back.');
    this.#live.placer?.hold();
    await this.#live.mover.bringBack();
  }

  /**
   * After a reload: if this device recorded the session as away in the cloud, takes it up again — its store catches
   * up with the cloud's checkpoints and its run is followed from where this device left it. Returns where it runs.
   */
  async resume(sessionId: string, model: ModelChoice): Promise<Placement> {
    if (this.#live?.sessionId === sessionId && this.#live.mover.placement !== 'device') return this.#live.mover.placement;
    const text = await this.opts.cloudRecord(sessionId);
    if (text === undefined) return 'device';
    let state;
    try {
      state = restoreCloudState(text);
    } catch (err) {
      // A record that cannot be read cannot be followed: the session is this device's again, from its own store.
      await this.opts.saveCloudRecord(sessionId, null);
      throw err;
    }
    const live = this.#live;
    if (live && live.sessionId !== sessionId && (live.mover.placement !== 'device' || live.mover.running)) {
      throw new FerryError('relay/move-busy', 'Another session is running on this page; wait for it to pause (or stop it), then open this session again to follow it in the cloud.');
    }
    const { template } = await this.#template(sessionId);
    const next = this.#adopt(await this.#client(model), sessionId, template, model);
    await next.mover.resumeCloud(state);
    return next.mover.placement;
  }

  /** Resolves when the live session's run (here or in the cloud) has paused. */
  async settled(): Promise<void> {
    await this.#live?.mover.settled();
  }

  async #attach(sessionId: string, model: ModelChoice): Promise<Live> {
    const live = this.#live;
    if (live?.sessionId === sessionId && sameModel(live.model, model)) {
      if (live.mover.placement !== 'device') return live;
      if (this.#startedWith === (await this.#startSettings()).key && (await this.#current(live))) return live;
    } else {
      this.#refuseIfAway();
    }
    const { template } = await this.#template(sessionId);
    const client = await this.#client(model);
    await this.#start(client, template, model, { sessionId });
    return this.#adopt(client, sessionId, template, model);
  }

  /** The template the session's agent belongs to, read from its checkpoints; a clear refusal for a foreign agent. */
  async #template(sessionId: string): Promise<{ template: TemplateId }> {
    const found = await sessionAgent(this.opts.store, sessionId);
    if (found.template === null) throw unknownAgentError(found.agent);
    return { template: found.template };
  }

  /** Whether the worker's session is the store's: same branch and head. */
  async #current(live: Live): Promise<boolean> {
    const [status, session] = await Promise.all([live.client.status(), Session.open(this.opts.store, live.sessionId)]);
    return status.branch === session.branch && status.head === (await session.head());
  }

  #refuseIfAway(): void {
    const live = this.#live;
    if (live && live.mover.placement !== 'device') {
      throw new FerryError('relay/move-busy', 'Another session runs in the cloud worker; open it and use "Bring back" first (this device runs one session at a time).');
    }
  }

  /** The worker for `model`: the live one (a session switch keeps the loaded model), or a new one. */
  async #client(model: ModelChoice): Promise<AgentClient> {
    if (this.#live && sameModel(this.#live.model, model)) return this.#live.client;
    await this.#live?.client.terminate();
    this.#live = undefined;
    const client = new AgentClient();
    if (this.#cpuShare < 1) await client.setCpuShare(this.#cpuShare);
    // The engine speaks while a session starts, before a mover listens: its news goes straight to the page.
    await client.subscribe((event) => {
      if (event.type === 'engine-loading' || event.type === 'engine-switch') this.opts.onEngine?.(event);
    });
    return client;
  }

  #adopt(client: AgentClient, sessionId: string, template: TemplateId, model: ModelChoice): Live {
    if (this.#live?.client === client && this.#live.sessionId === sessionId) return this.#live;
    const relay = new RelayClient(this.opts.relay());
    const placer = this.#placer(sessionId, () => mover);
    const mover: SessionMover = new SessionMover({
      agent: client,
      relay,
      reopen: (file) => this.#reopen(client, sessionId, template, model, file),
      onEvent: (event) => {
        if (event.where === 'device') placer?.event(event.event);
        this.opts.onEvent(sessionId, event);
      },
      onPlacement: (placement) => this.opts.onPlacement(sessionId, placement),
      // The cloud's checkpoints come straight into the page's store: only the objects it lacks travel.
      sync: async (published) => void (await relay.open({ relay: relay.http.baseUrl, snapshotId: published.snapshot.id, key: published.key }, this.opts.store)),
      persist: async (state) => void (await this.opts.saveCloudRecord(sessionId, state === null ? null : serializeCloudState(state))),
      replyTokens: () => this.opts.limits().replyTokens,
    });
    if (this.#live?.client === client) this.#live.mover.close();
    this.#live = { client, mover, sessionId, template, model, placer };
    return this.#live;
  }

  /** Moves the session by itself when this device falls well behind another the user allows (auto-placement.ts). */
  #placer(sessionId: string, mover: () => SessionMover): AutoPlacer | undefined {
    const context = this.opts.autoPlacement;
    if (!context) return undefined;
    return new AutoPlacer({
      context,
      step: async () => {
        const session = await Session.open(this.opts.store, sessionId);
        const [head, replies] = await Promise.all([session.head().then((id) => session.checkpoint(id)), session.recentReplyLengths(RECENT_REPLIES)]);
        const { replyTokens, contextSize } = this.opts.limits();
        // The context: what the agent generated so far plus a system prompt's worth (user and tool text uncounted).
        return { model: head.llm.model, promptTokens: Math.min(contextSize, SYSTEM_PROMPT_TOKENS + head.counters.tokens), expectedOutputTokens: expectedReplyTokens(replies, replyTokens), replyLimit: replyTokens };
      },
      move: (where, decision) => {
        if (mover().placement !== 'device') return;
        this.#withChildren(where).then(async (placed) => {
          if (mover().placement !== 'device') return;
          await mover().moveToCloud(placed, decision.estimate.name);
          this.opts.onAutoMove?.(sessionId, decision.reason);
        }).catch((err: unknown) => this.opts.onEvent(sessionId, { where: 'cloud', event: { type: 'error', ...describeFailure(err) } }));
      },
    });
  }

  /** A session back from the cloud: its newer checkpoints join the store, and the worker reopens it from there. */
  async #reopen(client: AgentClient, sessionId: string, template: TemplateId, model: ModelChoice, file: Uint8Array): Promise<AgentStatus> {
    const incoming = createMemoryStore();
    await importSession(incoming, file);
    await syncSession(incoming, storeTarget(this.opts.store), sessionId);
    return this.#start(client, template, model, { sessionId });
  }

  /** Starts the worker's session (a new one, or one from the store) with this device's settings as they are now. */
  async #start(client: AgentClient, template: TemplateId, model: ModelChoice, session: { sessionId: string } | { agent: string; tools: string[] }): Promise<AgentStatus> {
    const { limits, parallel, key } = await this.#startSettings();
    const [components, engine] = await Promise.all([templateComponents(template), this.#engineSpec(model, limits)]);
    const sampling = { maxTokens: limits.replyTokens, temperature: 0, seed: 0 };
    const status = await client.start({ components: components.files, engine, store: STORE_NAME, sampling, ...(parallel ? { parallel } : {}), ...session });
    this.#startedWith = key;
    return status;
  }

  /**
   * What a worker's session starts with that may change while it is open: Settings' engine limits, and where a
   * step's forked children run — across this device's space (its other devices offering themselves, the relay's
   * workers that charge nothing, and under "Any node" those that charge, within the budget) unless the privacy keeps
   * everything on this device.
   */
  async #startSettings(): Promise<{ limits: EngineLimits; parallel: ParallelOptions | undefined; key: string }> {
    const limits = this.opts.limits();
    const context = await this.opts.autoPlacement?.();
    const parallel: ParallelOptions | undefined = context?.space && context.prefs.privacy !== 'this-device' && /^https?:\/\//i.test(context.relay)
      ? {
          relayUrl: context.relay,
          space: context.space,
          cloud: context.prefs.privacy === 'any',
          ...(context.self ? { host: context.self } : {}),
          ...(context.prefs.budgetUsd !== undefined ? { maxCostUsd: context.prefs.budgetUsd } : {}),
        }
      : undefined;
    return { limits, parallel, key: JSON.stringify({ limits, parallel }) };
  }

  /**
   * The engine for `model` here: wllama with the Settings' context size, at most the model's own (memory on
   * phones); in front of it on the GPU, web-llm when a GPU model is chosen and this device's GPU can run it, else
   * the same GGUF through llama.cpp's WebGPU backend where the GPU has shader-f16 (unless Settings say not to).
   */
  #engineSpec(model: ModelChoice, { contextSize, gpuModel, ggufOnGpu }: EngineLimits): Promise<BrowserEngineSpec> {
    const key = JSON.stringify([model, contextSize, gpuModel, ggufOnGpu]);
    if (this.#spec?.key !== key) {
      const spec = openModel(model, this.opts.onModelProgress).then(async (file): Promise<BrowserEngineSpec> => {
        // A relay model's id is its SHA-256, as the cloud worker reports it; a picked file is hashed by the engine.
        const cpu: WllamaSpec =
          model.source === 'relay'
            ? { kind: 'wllama', model: file, modelId: model.id, contextSize: Math.min(model.contextSize, contextSize) }
            : { kind: 'wllama', model: file, contextSize: Math.min((await checkGguf(blobReader(file))).contextLength, contextSize) };
        if (gpuModel) {
          const gpu = await gpuRuns(gpuModel);
          if (gpu.ok) return { kind: 'web-llm', modelId: gpuModel, contextSize: cpu.contextSize ?? contextSize, fallback: cpu };
          this.opts.onEngine?.({ type: 'engine-unused', message: `${gpu.reason} Sessions run on their GGUF model with wllama instead.` });
        }
        // No web-llm model for this GPU: the session's GGUF goes on it through llama.cpp where it can.
        return ggufOnGpu && (await gpuOffloads()).ok ? { kind: 'wllama-webgpu', fallback: cpu } : cpu;
      });
      this.#spec = { key, spec };
      spec.catch(() => {
        if (this.#spec?.spec === spec) this.#spec = undefined;
      });
    }
    return this.#spec.spec;
  }
}

function describeFailure(err: unknown): { code: string; message: string } {
  return err instanceof FerryError ? { code: err.code, message: err.message } : { code: 'relay/move-failed', message: err instanceof Error ? err.message : String(err) };
}

function sameModel(a: ModelChoice, b: ModelChoice): boolean {
  return a.source === b.source && (a.source === 'relay' ? a.id === (b as typeof a).id && a.url === (b as typeof a).url : a.file === (b as typeof a).file);
}
