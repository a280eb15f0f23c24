/**
 * The page's one live agent: an agent worker (agent-client.ts) running one session at a time against the app's
 * IndexedDB store, with the chosen model, and the SessionMover that moves it to the relay's cloud worker and back.
 *
 * The store is the one source of truth: before every run the host compares the worker's session, branch and head
 * with the store's and reopens the session from the store when they differ (the page forked, rolled back or
 * switched branch; a move brought it back), instead of trusting the worker's copy.
 */
import { FerryError } from '../core/errors.ts';
import type { AgentStatus } from '../core/runtime/agent-api.ts';
import type { RunInput } from '../core/runtime/loop.ts';
import { Session } from '../core/session/index.ts';
import { importSession, storeTarget, syncSession } from '../core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../core/store/index.ts';
import { AgentClient } from './agent-client.ts';
import type { ModelChoice, TemplateId } from './app-state.ts';
import { openModel } from './llm/model-source.ts';
import { RelayClient } from './relay-client.ts';
import { SessionMover, type PlacedEvent, type Placement } from './session-mover.ts';
import { TEMPLATE_PARTS, templateComponents } from './template-components.ts';
import type { BrowserEngineSpec } from '../../workers/agent.worker.ts';
import type { DownloadProgress } from './llm/model-download.ts';

/** The IndexedDB store the app and the agent worker share (AppState opens the same name). */
const STORE_NAME = 'ferry';
/** wllama's context on this device for a relay model: the model's own, at most this (memory on phones). */
const MAX_CONTEXT = 4096;
/** A reply's length limit. */
const MAX_REPLY_TOKENS = 512;

export interface AgentHostOptions {
  /** The page's handle on the shared store (for syncing a session that comes back from the cloud). */
  store: Store;
  relay(): string;
  onEvent(sessionId: string, event: PlacedEvent): void;
  onPlacement(sessionId: string, placement: Placement): void;
  /** Model loading (a download when the cached copy is gone). */
  onModelProgress?(progress: DownloadProgress): void;
}

interface Live {
  client: AgentClient;
  mover: SessionMover;
  sessionId: string;
  template: TemplateId;
  model: ModelChoice;
}

export class AgentHost {
  #live: Live | undefined;
  #spec: { model: ModelChoice; spec: Promise<BrowserEngineSpec> } | undefined;

  constructor(private readonly opts: AgentHostOptions) {}

  /** Where the live session runs now; 'device' for any other session. */
  placement(sessionId: string): Placement {
    return this.#live?.sessionId === sessionId ? this.#live.mover.placement : 'device';
  }

  /** Creates a session of `template` in the store: its agent and tools' first state, under the chosen model. */
  async create(template: TemplateId, model: ModelChoice): Promise<string> {
    this.#refuseIfAway();
    const client = await this.#client(model);
    const { ids } = await templateComponents(template);
    const parts = TEMPLATE_PARTS[template];
    const status = await client.start({ ...(await this.#base(template, model)), agent: ids[parts.agent]!, tools: parts.tools.map((t) => ids[t]!) });
    this.#adopt(client, status.sessionId, template, model);
    return status.sessionId;
  }

  /**
   * Runs `text` in session `sessionId`: the task for a session that has not started yet, a message otherwise.
   * Resolves when the run pauses (idle, stopped, moved away) with the worker's status.
   */
  async send(sessionId: string, template: TemplateId, model: ModelChoice, text: string): Promise<void> {
    const body = text.trim();
    if (!body) throw new FerryError('app/empty-message', 'The message is empty; type something to send.');
    const live = await this.#attach(sessionId, template, model);
    if (live.mover.placement !== 'device') return live.mover.send({ type: 'user', text: body });
    // A generation continuing after a move back finishes first; the message then runs after it.
    await live.mover.settled();
    const status = await live.client.status();
    const input: RunInput = status.state.steps === 0 ? { type: 'start', task: body } : { type: 'user', text: body };
    await live.mover.send(input);
  }

  /** Stops the run in this worker: a generation in flight ends "stopped" and is checkpointed. */
  async cancel(sessionId: string): Promise<void> {
    if (this.#live?.sessionId !== sessionId) return;
    if (this.#live.mover.placement !== 'device') throw new FerryError('relay/move-busy', 'The session runs in the cloud worker; use "Bring back" to stop it there and continue here.');
    await this.#live.client.cancel();
  }

  async moveToCloud(sessionId: string, template: TemplateId, model: ModelChoice): Promise<void> {
    const live = await this.#attach(sessionId, template, model);
    await live.mover.moveToCloud();
  }

  async bringBack(sessionId: string): Promise<void> {
    if (this.#live?.sessionId !== sessionId) throw new FerryError('relay/move-busy', 'This session is not in the cloud; there is nothing to bring back.');
    await this.#live.mover.bringBack();
  }

  /** Resolves when the live session's run (here or in the cloud) has paused. */
  async settled(): Promise<void> {
    await this.#live?.mover.settled();
  }

  async #attach(sessionId: string, template: TemplateId, model: ModelChoice): Promise<Live> {
    const live = this.#live;
    if (live?.sessionId === sessionId && sameModel(live.model, model)) {
      if (live.mover.placement !== 'device') return live;
      if (await this.#current(live)) return live;
    } else {
      this.#refuseIfAway();
    }
    const client = await this.#client(model);
    await client.start({ ...(await this.#base(template, model)), sessionId });
    return this.#adopt(client, sessionId, template, model);
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
    return new AgentClient();
  }

  #adopt(client: AgentClient, sessionId: string, template: TemplateId, model: ModelChoice): Live {
    if (this.#live?.client === client && this.#live.sessionId === sessionId) return this.#live;
    const mover = new SessionMover({
      agent: client,
      relay: new RelayClient(this.opts.relay()),
      reopen: (file) => this.#reopen(client, sessionId, template, model, file),
      onEvent: (event) => this.opts.onEvent(sessionId, event),
      onPlacement: (placement) => this.opts.onPlacement(sessionId, placement),
    });
    if (this.#live?.client === client) this.#live.mover.close();
    this.#live = { client, mover, sessionId, template, model };
    return this.#live;
  }

  /** A session back from the cloud: its newer checkpoints join the store, and the worker reopens it from there. */
  async #reopen(client: AgentClient, sessionId: string, template: TemplateId, model: ModelChoice, file: Uint8Array): Promise<AgentStatus> {
    const incoming = createMemoryStore();
    await importSession(incoming, file);
    await syncSession(incoming, storeTarget(this.opts.store), sessionId);
    return client.start({ ...(await this.#base(template, model)), sessionId });
  }

  async #base(template: TemplateId, model: ModelChoice) {
    const [components, engine] = await Promise.all([templateComponents(template), this.#engineSpec(model)]);
    return { components: components.files, engine, store: STORE_NAME, sampling: { maxTokens: MAX_REPLY_TOKENS, temperature: 0, seed: 0 } };
  }

  #engineSpec(model: ModelChoice): Promise<BrowserEngineSpec> {
    if (!this.#spec || !sameModel(this.#spec.model, model)) {
      const spec = openModel(model, this.opts.onModelProgress).then((file): BrowserEngineSpec => ({
        kind: 'wllama',
        model: file,
        // A relay model's id is its SHA-256, as the cloud worker reports it; a picked file is hashed by the engine.
        ...(model.source === 'relay' ? { modelId: model.id, contextSize: Math.min(model.contextSize, MAX_CONTEXT) } : {}),
      }));
      this.#spec = { model, spec };
      spec.catch(() => {
        if (this.#spec?.spec === spec) this.#spec = undefined;
      });
    }
    return this.#spec.spec;
  }
}

function sameModel(a: ModelChoice, b: ModelChoice): boolean {
  return a.source === b.source && (a.source === 'relay' ? a.id === (b as typeof a).id && a.url === (b as typeof a).url : a.file === (b as typeof a).file);
}
