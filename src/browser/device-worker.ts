/**
 * This device's agent worker (agent-client.ts → workers/agent.worker.ts) and the sessions that run in it. The worker
 * runs one session at a time, opened from the IndexedDB store the page shares with it; each session here has an
 * AgentRunner whose every run first `claim`s the worker: the worker follows the store if the session moved on there
 * (the page forked or rolled back, a move brought checkpoints back), opens the session anew if it held another one
 * or Settings changed since, and refuses while another session is running in it. The loaded model outlives the
 * sessions; another model gets a new worker. Which agent and tools a session runs is read from its checkpoints.
 */
import { FerryError, isFerryError } from '../core/errors.ts';
import { AgentRunner, type AgentStatus, type ParallelOptions, type RunnerEvent, type RunnerListener, type SpeculativeRunOptions } from '../core/host/index.ts';
import { toBase64Url } from '../core/protocol/index.ts';
import type { Store } from '../core/store/index.ts';
import { AgentClient } from './agent-client.ts';
import type { EngineChoice, EngineLimits } from './engine-choice.ts';
import { sameModel, type ModelChoice } from './settings.ts';
import { recordAcceptance } from './speculative-acceptance.ts';
import { sessionAgent, TEMPLATE_PARTS, templateComponents, unknownAgentError } from './template-components.ts';
import type { TemplateId } from './templates.ts';

/** What a worker's session starts with that may change while it is open (a change opens it again). */
export interface StartSettings {
  limits: EngineLimits;
  /** Where a step's forked children run (across this device's space), or undefined: here, one by one. */
  parallel: ParallelOptions | undefined;
}

export interface DeviceWorkerOptions {
  store: Store;
  /** The IndexedDB store's name, which the worker opens too. */
  storeName: string;
  engines: EngineChoice;
  settings(): Promise<StartSettings>;
  /** The key the relay's workers keyed a session's prefixes with (session-records.ts `prefixKey`); undefined: none. */
  prefixKey?(sessionId: string): Promise<Uint8Array | undefined>;
  /** The engine's own news (web-llm loading, a hand-over to the CPU and why). */
  onEngine?(event: Extract<RunnerEvent, { type: 'engine-loading' | 'engine-switch' }>): void;
}

export class DeviceWorker {
  #client: { client: AgentClient; model: ModelChoice } | undefined;
  /** The session the worker holds, and the settings it was opened with. */
  #holds: { sessionId: string; key: string } | undefined;
  readonly #runners = new Map<string, AgentRunner>();
  /** Sessions whose runner runs them speculatively (drafted here, verified on a relay), and where they verify. */
  readonly #speculative = new Map<string, SpeculativeRunOptions>();
  /** The CPU share this device's generations may use (Settings), applied to every worker. */
  #cpuShare = 1;
  /** Claims and creations one at a time: each sees the worker as the one before left it. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: DeviceWorkerOptions) {}

  /**
   * The runner of session `sessionId` on this device, with `model`; with `speculative`, its generations are drafted
   * here and verified by the relay's worker there (a sampled session runs plainly, and says why).
   */
  runner(sessionId: string, model: ModelChoice, onEvent: RunnerListener, speculative?: SpeculativeRunOptions): AgentRunner {
    const runner = new AgentRunner({ sessionId, onEvent, claim: () => this.#claim(sessionId, model, speculative), worker: { send: (input) => this.#worker().send(input), cancel: () => this.#cancel(sessionId), status: () => this.#worker().status() } });
    this.#runners.set(sessionId, runner);
    return runner;
  }

  /** Forgets a session's runner (it moved away, or was deleted). */
  drop(runner: AgentRunner): void {
    if (this.#runners.get(runner.sessionId) === runner) this.#runners.delete(runner.sessionId);
    void runner.close();
  }

  /** Creates a session of `template` in the store: its agent and tools' first state, under `model`. */
  create(template: TemplateId, model: ModelChoice): Promise<{ sessionId: string; agent: string }> {
    return this.#inTurn(() => this.#create(template, model));
  }

  async #create(template: TemplateId, model: ModelChoice): Promise<{ sessionId: string; agent: string }> {
    this.#refuseIfBusy(undefined);
    const client = await this.#clientFor(model);
    const { ids } = await templateComponents(template);
    const parts = TEMPLATE_PARTS[template];
    const agent = ids[parts.agent]!;
    const status = await this.#start(client, template, model, { agent, tools: parts.tools.map((t) => ids[t]!) });
    return { sessionId: status.sessionId, agent };
  }

  /** Caps this device's generations at `fraction` of a CPU, from their next token on. */
  async setCpuShare(fraction: number): Promise<void> {
    this.#cpuShare = fraction;
    await this.#client?.client.setCpuShare(fraction);
  }

  /** Makes the worker hold `sessionId` as the store has it now. */
  #claim(sessionId: string, model: ModelChoice, speculative: SpeculativeRunOptions | undefined): Promise<AgentStatus> {
    return this.#inTurn(() => {
      // The mode is the claiming runner's: a runner left behind by a move that failed claims its own again.
      if (speculative) this.#speculative.set(sessionId, speculative);
      else this.#speculative.delete(sessionId);
      return this.#take(sessionId, model);
    });
  }

  #inTurn<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#turn.then(fn, fn);
    this.#turn = next.catch(() => undefined);
    return next;
  }

  async #take(sessionId: string, model: ModelChoice): Promise<AgentStatus> {
    this.#refuseIfBusy(sessionId);
    const client = await this.#clientFor(model);
    const key = this.#key(sessionId, await this.#settings(sessionId));
    if (this.#holds?.sessionId === sessionId && this.#holds.key === key) {
      try {
        return await client.reload();
      } catch (err) {
        // A head made by other builds (an older session brought back): opened anew below.
        if (!isFerryError(err, 'runtime/other-build')) throw err;
      }
    }
    const found = await sessionAgent(this.opts.store, sessionId);
    if (found.template === null) throw unknownAgentError(found.agent);
    return this.#start(client, found.template, model, { sessionId });
  }

  #refuseIfBusy(sessionId: string | undefined): void {
    const held = this.#holds?.sessionId;
    if (held !== undefined && held !== sessionId && this.#runners.get(held)?.running) {
      throw new FerryError('app/device-busy', 'Another session is running on this device right now; wait for its reply (or stop it), or move one of them to another node, then try again.');
    }
  }

  /** Ends the run of `sessionId` in the worker, if the worker holds it (another session's run is not this one's to stop). */
  async #cancel(sessionId: string): Promise<void> {
    if (this.#client && this.#holds?.sessionId === sessionId) await this.#client.client.cancel();
  }

  #worker(): AgentClient {
    if (!this.#client) throw new FerryError('runtime/not-started', 'The agent worker is not running; send the message again.');
    return this.#client.client;
  }

  /** The worker for `model`: the one running (a session switch keeps the loaded model), or a new one. */
  async #clientFor(model: ModelChoice): Promise<AgentClient> {
    if (this.#client && sameModel(this.#client.model, model)) return this.#client.client;
    await this.#client?.client.terminate();
    this.#client = undefined;
    this.#holds = undefined;
    const client = new AgentClient();
    if (this.#cpuShare < 1) await client.setCpuShare(this.#cpuShare);
    await client.subscribe((event) => {
      // A speculative generation here measures how well this device drafts (placement estimates running so with it).
      if (event.type === 'generation' && event.speculative) recordAcceptance(event.speculative);
      // The engine speaks while a session starts, before any run: its news goes straight to the page.
      if (event.type === 'engine-loading' || event.type === 'engine-switch') this.opts.onEngine?.(event);
      else if (this.#holds) this.#runners.get(this.#holds.sessionId)?.hear(event);
    });
    this.#client = { client, model };
    return client;
  }

  /**
   * This device's settings for `sessionId`: a survey split's children go first to a node holding the session's
   * prompt, found under the key its runs elsewhere used (a session back from a worker gets one: it opens anew).
   */
  async #settings(sessionId: string | undefined): Promise<StartSettings> {
    const settings = await this.opts.settings();
    const key = settings.parallel && sessionId !== undefined ? await this.opts.prefixKey?.(sessionId) : undefined;
    return key && settings.parallel ? { ...settings, parallel: { ...settings.parallel, prefixKey: toBase64Url(key) } } : settings;
  }

  /** What the worker's session was opened with: a change (Settings, or the run mode) opens it again. */
  #key(sessionId: string, settings: StartSettings): string {
    return JSON.stringify([settings, this.#speculative.get(sessionId) ?? null]);
  }

  /** Starts the worker's session (a new one, or one from the store) with this device's settings as they are now. */
  async #start(client: AgentClient, template: TemplateId, model: ModelChoice, session: { sessionId: string } | { agent: string; tools: string[] }): Promise<AgentStatus> {
    const settings = await this.#settings('sessionId' in session ? session.sessionId : undefined);
    const { limits, parallel } = settings;
    this.#holds = undefined;
    const [components, engine] = await Promise.all([templateComponents(template), this.opts.engines.spec(model, limits)]);
    const sampling = { maxTokens: limits.replyTokens, ...limits.sampling[template] };
    const speculative = 'sessionId' in session ? this.#speculative.get(session.sessionId) : undefined;
    const status = await client.start({ components: components.files, engine, store: this.opts.storeName, sampling, ...(parallel ? { parallel } : {}), ...(speculative ? { speculative } : {}), ...session });
    this.#holds = { sessionId: status.sessionId, key: this.#key(status.sessionId, settings) };
    return status;
  }
}
