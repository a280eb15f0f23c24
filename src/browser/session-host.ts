/**
 * The page's sessions, wherever each runs: here in the agent worker (device-worker.ts) or on a relay's node — a
 * cloud worker, or another of the user's devices — followed from here (core/host RelayRunner). Each session has its
 * own runner, so several can be away at once while another runs here. The UI hears one event vocabulary whatever
 * runs a session (`checkpoint`: the step is in this device's store), and where it is as a `Placement` to show.
 *
 * A move is the core's: the runner that has the session stops at a checkpoint (the store then holds all of it), the
 * other takes over from the store. While a session is away, where it is (the snapshot, its write token and key, the
 * run and the next event) is kept in this device's records, so a reload follows it again. Automatic placement
 * (auto-placement.ts) may move a session that runs here before a step, or live during a reply.
 *
 * One tab of this browser runs a session at a time (session-tabs.ts): the one holding its lock, taken when the tab
 * first runs it. The other tabs follow it: they hear its runs and events, send their messages to it once saved as
 * pending input, ask it to stop, and take it over when that tab closes or crashes.
 */
import { FerryError, type SerializedError } from '../core/errors.ts';
import { move, RelayRunner, restoreRelayPlacement, serializeRelayPlacement, type RunnerEvent, type SessionRunner } from '../core/host/index.ts';
import { RECENT_REPLIES, expectedReplyTokens } from '../core/placement/index.ts';
import { RelayHttp, type ChildrenScope, type RunPlacement } from '../core/protocol/index.ts';
import type { HostCall, RunInput } from '../core/runtime/loop.ts';
import { Session } from '../core/session/index.ts';
import { AutoPlacer, type AutoPlacementContext } from './auto-placement.ts';
import type { DeviceWorker, StartSettings } from './device-worker.ts';
import type { EngineLimits } from './engine-choice.ts';
import type { LocalData } from './local-data.ts';
import { SessionTabs, type TabMessage } from './session-tabs.ts';
import type { ModelChoice } from './settings.ts';

/** What an agent's system prompt and tool schemas take in the context, roughly, tokens. */
const SYSTEM_PROMPT_TOKENS = 512;
const HERE = 'This device';
const CLOUD = 'Cloud worker';

/** Where a session is, for people: running here, away on `name`, or on its way to (or back from) there. */
export interface Placement {
  state: 'here' | 'moving' | 'away' | 'returning';
  /** Where it runs now, or is going: "This device", "Cloud worker", or the name of one of the space's devices. */
  name: string;
  /** Another tab of this browser runs it (and this one follows). */
  otherTab?: true;
}

/** Where to move a session: here, or a relay's node (`where` absent: any cloud worker) named `name` for people. */
export type MoveTarget = { here: true } | { here?: false; where?: RunPlacement; name?: string };

export interface SessionHostOptions {
  data: LocalData;
  worker: DeviceWorker;
  relay(): string;
  limits(): EngineLimits;
  /** The model a message another tab sends runs with (throws when none is chosen). */
  model(): ModelChoice;
  /** What placement may do now (Settings' privacy, objective and budget; this device's space and node); absent: nothing moves by itself. */
  autoPlacement?(): Promise<AutoPlacementContext | undefined>;
  onEvent(sessionId: string, event: RunnerEvent, placement: Placement): void;
  onPlacement(sessionId: string, placement: Placement): void;
  /** The session moved by itself, and why. */
  onAutoMove?(sessionId: string, reason: string): void;
  /** A run began that this page did not ask for: in the tab that runs the session, or here for another tab (`text`: its message). */
  onRun?(sessionId: string, text: string | null): void;
}

interface Entry {
  runner: SessionRunner;
  placement: Placement;
  placer: AutoPlacer | undefined;
}

/** A session another tab runs, as this tab follows it. */
interface Followed {
  placement: Placement;
  /** The run going on there, and the call that ends it here. */
  run: { ended: Promise<void>; end(): void } | undefined;
  /** Resolves once this tab holds the session's lock: that tab let it go, closed or crashed. */
  freed: Promise<void>;
}

export class SessionHost {
  readonly #entries = new Map<string, Entry>();
  readonly #followed = new Map<string, Followed>();
  /** The runs of this tab's sessions going on, with their message: what a tab that opens one is told. */
  readonly #runs = new Map<string, { text: string | null; count: number }>();
  /** Messages this tab asked another to run, by request, until it answers. */
  readonly #asked = new Map<string, { sessionId: string; answer(error: SerializedError | undefined): void }>();
  readonly #tabs: SessionTabs;

  constructor(private readonly opts: SessionHostOptions) {
    this.#tabs = new SessionTabs((m) => this.#fromTab(m));
  }

  placement(sessionId: string): Placement {
    const followed = this.#followed.get(sessionId);
    if (followed) return followed.placement;
    return this.#entries.get(sessionId)?.placement ?? { state: 'here', name: HERE };
  }

  running(sessionId: string): boolean {
    return this.#followed.get(sessionId)?.run !== undefined || (this.#entries.get(sessionId)?.runner.running ?? false);
  }

  /** Resolves when no run of the session goes on (here, followed on the relay, or in another tab). */
  async settled(sessionId: string): Promise<void> {
    await this.#followed.get(sessionId)?.run?.ended;
    await this.#entries.get(sessionId)?.runner.settled();
  }

  /** When another tab runs the session, this one follows it: returns where it runs; undefined when no other tab runs it. */
  async follow(sessionId: string): Promise<Placement | undefined> {
    if (this.#entries.has(sessionId) || !(await this.#tabs.heldElsewhere(sessionId))) return undefined;
    this.#follow(sessionId);
    this.#tabs.post({ type: 'hello', session: sessionId });
    return this.placement(sessionId);
  }

  /** Creates a session of `template` in the store, under the chosen model. */
  create(template: Parameters<DeviceWorker['create']>[0], model: ModelChoice): Promise<{ sessionId: string; agent: string }> {
    return this.opts.worker.create(template, model);
  }

  /**
   * After a reload: a session this device left on a relay's node is followed again (its store catches up first).
   * Returns where it is.
   */
  async resume(sessionId: string, model: ModelChoice): Promise<Placement> {
    const entry = this.#entries.get(sessionId);
    if (entry) return entry.placement;
    if (!(await this.#own(sessionId))) return this.placement(sessionId);
    const text = await this.opts.data.records.placement(sessionId);
    if (text === undefined) return this.placement(sessionId);
    let saved;
    try {
      saved = restoreRelayPlacement(text);
    } catch (err) {
      // A record that cannot be read cannot be followed: the session is this device's again, from its own store.
      await this.opts.data.records.savePlacement(sessionId, null);
      throw err;
    }
    const runner = await RelayRunner.restore(saved, this.#relayOptions(sessionId, model));
    const away: Entry = { runner, placement: { state: 'away', name: saved.name ?? CLOUD }, placer: undefined };
    this.#entries.set(sessionId, away);
    this.#placed(sessionId, away.placement);
    this.#announce(sessionId, null, runner.settled());
    return away.placement;
  }

  /**
   * Runs `text` in the session, where it runs: its task when it has not started yet, a message otherwise. Resolves
   * when the run pauses. Before a step here, automatic placement may move the session first.
   */
  send(sessionId: string, model: ModelChoice, text: string): Promise<void> {
    return this.#send(sessionId, model, text, false);
  }

  /** `asked`: another tab sent it (this page's screen did not start the run). */
  async #send(sessionId: string, model: ModelChoice, text: string, asked: boolean): Promise<void> {
    const body = text.trim();
    if (!body) throw new FerryError('app/empty-message', 'The message is empty; type something to send.');
    if (!(await this.#own(sessionId))) return this.#ask(sessionId, model, body);
    const entry = this.#entry(sessionId, model);
    this.#refuseWhileMoving(entry);
    const input: RunInput = (await this.#steps(sessionId)) === 0 ? { type: 'start', task: body } : { type: 'user', text: body };
    if (entry.placement.state === 'here') {
      const placed = await entry.placer?.beforeStep();
      if (placed) {
        await this.move(sessionId, model, { where: placed.where, name: placed.decision.estimate.name });
        this.opts.onAutoMove?.(sessionId, placed.decision.reason);
      }
    }
    await this.#announce(sessionId, body, entry.runner.send(input), asked);
  }

  /**
   * Runs the session's own tools on content the person adds (files into its workspace, sources into its docs), as
   * host steps checkpointed in its store, one per batch — on this device only: a session away is brought back first.
   */
  async addContent(sessionId: string, model: ModelChoice, batches: readonly HostCall[][]): Promise<void> {
    await this.#refuseIfOtherTab(sessionId, 'add content to it');
    const entry = this.#entry(sessionId, model);
    this.#refuseWhileMoving(entry);
    await this.#announce(sessionId, null, (async () => {
      for (const calls of batches) await entry.runner.send({ type: 'tools', calls });
    })());
  }

  /** Stops the run where it is: the generation in flight is cut and checkpointed; the session stays where it is. */
  async stop(sessionId: string): Promise<void> {
    if (this.#followed.has(sessionId)) return this.#tabs.post({ type: 'stop', session: sessionId });
    await this.#entries.get(sessionId)?.runner.stop();
  }

  /** Moves the session: here, or to a relay's node (its forked children keep this device's scope). */
  async move(sessionId: string, model: ModelChoice, target: MoveTarget): Promise<void> {
    await this.#refuseIfOtherTab(sessionId, 'move it');
    const entry = this.#entry(sessionId, model);
    this.#refuseWhileMoving(entry);
    if (target.here && entry.placement.state === 'here') return;
    const before = entry.placement;
    const name = target.here ? HERE : target.where?.space ? (target.name ?? 'another device') : CLOUD;
    this.#set(sessionId, entry, { state: target.here ? 'returning' : 'moving', name });
    const from = entry.runner;
    const to = target.here ? this.opts.worker.runner(sessionId, model, (e) => this.#heard(sessionId, e)) : new RelayRunner({ ...this.#relayOptions(sessionId, model), where: await this.#withChildren(target.where), name });
    try {
      entry.runner = await move(from, to, target.here
        ? { code: 'relay/bring-back-failed', message: 'The session could not come back to this device; it is safe in its last checkpoint. Try again' }
        : { code: 'relay/move-failed', message: `The session could not move to ${name}; it stays where it was` });
    } catch (err) {
      await to.close();
      this.#set(sessionId, entry, before);
      throw err;
    }
    await from.close();
    if (target.here) {
      entry.placer?.hold();
      await this.opts.data.records.savePlacement(sessionId, null);
    }
    this.#set(sessionId, entry, { state: target.here ? 'here' : 'away', name });
    this.#announce(sessionId, null, entry.runner.settled());
  }

  /**
   * The session is being deleted on this device. Away, its run there is handed back — it stays on the relay, idle,
   * from where an undo can follow it again — and it is no longer followed, so nothing of it comes back.
   */
  async release(sessionId: string): Promise<void> {
    if (this.#followed.has(sessionId)) this.#tabs.post({ type: 'release', session: sessionId });
    const entry = this.#entries.get(sessionId);
    if (!entry) return this.#tabs.release(sessionId);
    this.#entries.delete(sessionId);
    try {
      if (entry.runner instanceof RelayRunner) return await entry.runner.letGo();
      try {
        await entry.runner.stop();
      } finally {
        await entry.runner.close();
      }
    } finally {
      this.#tabs.release(sessionId);
    }
  }

  /** Takes the session for this tab unless another tab runs it (which this one then follows); true when this tab may run it. */
  async #own(sessionId: string): Promise<boolean> {
    if (this.#tabs.owns(sessionId)) return true;
    if (!this.#followed.has(sessionId) && (await this.#tabs.take(sessionId))) return true;
    this.#follow(sessionId);
    return false;
  }

  async #refuseIfOtherTab(sessionId: string, what: string): Promise<void> {
    if (!(await this.#own(sessionId))) throw new FerryError('app/other-tab', `This session runs in another tab of this browser; ${what} there, or close that tab and try again here.`);
  }

  /** Follows the session another tab runs, until this tab may run it. */
  #follow(sessionId: string): Followed {
    let followed = this.#followed.get(sessionId);
    if (followed) return followed;
    followed = { placement: { state: 'here', name: HERE, otherTab: true }, run: undefined, freed: this.#tabs.whenFree(sessionId) };
    this.#followed.set(sessionId, followed);
    this.opts.onPlacement(sessionId, followed.placement);
    followed.freed.then(() => this.#tookOver(sessionId)).catch((err: unknown) => this.#heard(sessionId, { type: 'error', code: 'app/other-tab', message: `This tab could not take the session over from the tab that ran it (${err instanceof Error ? err.message : String(err)}); reload the page.` }));
    return followed;
  }

  /** The tab that ran the session let it go, closed or crashed: this tab may run it, from what the store holds. */
  async #tookOver(sessionId: string): Promise<void> {
    const followed = this.#followed.get(sessionId);
    this.#followed.delete(sessionId);
    followed?.run?.end();
    this.opts.onPlacement(sessionId, this.placement(sessionId));
    // Left on a relay's node, the session is followed there from this tab now.
    if ((await this.opts.data.records.placement(sessionId)) !== undefined) await this.resume(sessionId, this.opts.model());
  }

  /**
   * Another tab runs the session: it runs `text` (already saved here as the session's pending input). Should that tab
   * close first, this one runs it, unless a checkpoint there holds it already.
   */
  async #ask(sessionId: string, model: ModelChoice, text: string): Promise<void> {
    const followed = this.#follow(sessionId);
    const request = crypto.randomUUID();
    const answered = new Promise<SerializedError | undefined>((answer) => this.#asked.set(request, { sessionId, answer }));
    this.#tabs.post({ type: 'send', session: sessionId, request, text });
    try {
      const answer = await Promise.race([answered.then((error) => ({ error })), followed.freed.then(() => undefined)]);
      if (answer?.error) throw FerryError.fromJSON(answer.error);
      if (!answer && (await this.#stillPending(sessionId, text))) await this.send(sessionId, model, text);
    } finally {
      this.#asked.delete(request);
    }
  }

  async #stillPending(sessionId: string, text: string): Promise<boolean> {
    const pending = await this.opts.data.records.pendingInput(await Session.open(this.opts.data.store, sessionId));
    return pending?.text === text;
  }

  /** Runs a message another tab saved and sent here, and answers that tab. */
  async #runAsked(m: Extract<TabMessage, { type: 'send' }>): Promise<void> {
    let error: SerializedError | undefined;
    try {
      if (this.running(m.session)) throw new FerryError('app/other-tab', 'This session is busy with a reply in another tab of this browser; wait for it to end, then send your message again.');
      await this.#send(m.session, this.opts.model(), m.text, true);
    } catch (err) {
      error = (err instanceof FerryError ? err : new FerryError('runtime/failed', err instanceof Error ? err.message : String(err))).toJSON();
    }
    this.#tabs.post({ type: 'done', session: m.session, request: m.request, ...(error ? { error } : {}) });
  }

  /**
   * Tells the other tabs a run of the session began here (`asked`: for one of them, so this page's screen hears of it
   * too) and, once no run of it goes on, that it ended. Returns `run`.
   */
  #announce(sessionId: string, text: string | null, run: Promise<void>, asked = false): Promise<void> {
    const runs = this.#runs.get(sessionId) ?? { text, count: 0 };
    this.#runs.set(sessionId, { text: runs.text ?? text, count: runs.count + 1 });
    if (runs.count === 0) this.#tabs.post({ type: 'run', session: sessionId, text });
    if (asked) this.opts.onRun?.(sessionId, text);
    const ended = (): void => {
      const now = this.#runs.get(sessionId);
      if (now && now.count > 1) return void this.#runs.set(sessionId, { ...now, count: now.count - 1 });
      this.#runs.delete(sessionId);
      this.#tabs.post({ type: 'idle', session: sessionId });
    };
    run.then(ended, ended);
    return run;
  }

  /** What another tab says or asks about a session. */
  #fromTab(m: TabMessage): void {
    const id = m.session;
    const mine = this.#tabs.owns(id);
    switch (m.type) {
      case 'hello': {
        if (!this.#entries.has(id)) return;
        this.#tabs.post({ type: 'placement', session: id, placement: this.placement(id) });
        const runs = this.#runs.get(id);
        if (runs) this.#tabs.post({ type: 'run', session: id, text: runs.text });
        return;
      }
      case 'send':
        if (mine) void this.#runAsked(m);
        return;
      case 'stop':
      case 'release':
        if (mine) void (m.type === 'stop' ? this.stop(id) : this.release(id)).catch((err: unknown) => this.#heard(id, { type: 'error', code: 'app/other-tab', message: err instanceof Error ? err.message : String(err) }));
        return;
      case 'done':
        this.#asked.get(m.request)?.answer(m.error);
        return;
    }
    if (mine) return;
    const followed = this.#follow(id);
    switch (m.type) {
      case 'run': {
        if (followed.run) return;
        let end!: () => void;
        const ended = new Promise<void>((resolve) => (end = resolve));
        followed.run = { ended, end: () => ((followed.run = undefined), end()) };
        // A message this tab asked for is already counted by its screen.
        if (![...this.#asked.values()].some((a) => a.sessionId === id)) this.opts.onRun?.(id, m.text);
        return;
      }
      case 'idle':
        return followed.run?.end();
      case 'placement':
      case 'event':
        followed.placement = { ...m.placement, otherTab: true };
        if (m.type === 'event') this.opts.onEvent(id, m.event, followed.placement);
        else this.opts.onPlacement(id, followed.placement);
        return;
    }
  }

  /** The session's entry: here, unless a move or a reload made it away. */
  #entry(sessionId: string, model: ModelChoice): Entry {
    let entry = this.#entries.get(sessionId);
    if (!entry) {
      entry = { runner: this.opts.worker.runner(sessionId, model, (e) => this.#heard(sessionId, e)), placement: { state: 'here', name: HERE }, placer: this.#placer(sessionId, model) };
      this.#entries.set(sessionId, entry);
    }
    return entry;
  }

  #heard(sessionId: string, event: RunnerEvent): void {
    const entry = this.#entries.get(sessionId);
    if (entry?.placement.state === 'here') entry.placer?.event(event);
    const placement = entry?.placement ?? this.placement(sessionId);
    this.opts.onEvent(sessionId, event, placement);
    this.#tabs.post({ type: 'event', session: sessionId, event, placement });
  }

  #relayOptions(sessionId: string, model: ModelChoice): ConstructorParameters<typeof RelayRunner>[0] {
    return {
      sessionId,
      store: this.opts.data.store,
      relay: new RelayHttp({ baseUrl: this.opts.relay() }),
      onEvent: (e) => this.#heard(sessionId, e),
      persist: async (p) => void (await this.opts.data.records.savePlacement(sessionId, serializeRelayPlacement(p))),
      onReassigned: (name) => {
        const entry = this.#entries.get(sessionId);
        if (entry && name) this.#set(sessionId, entry, { ...entry.placement, name });
      },
      onNodeLeft: () => void this.#comeBack(sessionId, model),
      replyTokens: () => this.opts.limits().replyTokens,
    };
  }

  /**
   * The node a session was pinned to left, and the relay did not move the run on: the session comes back here from
   * its last published checkpoint and says so. A message that no checkpoint holds is offered again (PendingInput).
   */
  async #comeBack(sessionId: string, model: ModelChoice): Promise<void> {
    const who = this.#entries.get(sessionId)?.placement.name ?? CLOUD;
    try {
      await this.move(sessionId, model, { here: true });
      this.#heard(sessionId, { type: 'notice', message: `${who} running this session left, so it came back to this device from its last checkpoint.` });
    } catch (err) {
      this.#heard(sessionId, { type: 'error', code: 'relay/bring-back-failed', message: `${who} running this session left, and it could not come back by itself; it is safe in its last published checkpoint. Bring it back by hand (${err instanceof Error ? err.message : String(err)}).` });
    }
  }

  /** Moves a session that runs here by itself when another node the user allows would do much better (auto-placement.ts). */
  #placer(sessionId: string, model: ModelChoice): AutoPlacer | undefined {
    const context = this.opts.autoPlacement;
    if (!context) return undefined;
    return new AutoPlacer({
      context,
      step: async () => {
        const session = await Session.open(this.opts.data.store, sessionId);
        const [head, replies] = await Promise.all([session.head().then((id) => session.checkpoint(id)), session.recentReplyLengths(RECENT_REPLIES)]);
        const { replyTokens, contextSize } = this.opts.limits();
        // The context: what the agent generated so far plus a system prompt's worth (user and tool text uncounted).
        return { model: head.llm.model, promptTokens: Math.min(contextSize, SYSTEM_PROMPT_TOKENS + head.counters.tokens), expectedOutputTokens: expectedReplyTokens(replies, replyTokens), replyLimit: replyTokens };
      },
      move: (where, decision) => {
        if (this.placement(sessionId).state !== 'here') return;
        this.move(sessionId, model, { where, name: decision.estimate.name })
          .then(() => this.opts.onAutoMove?.(sessionId, decision.reason))
          .catch((err: unknown) => this.#heard(sessionId, { type: 'error', code: 'relay/move-failed', message: err instanceof Error ? err.message : String(err) }));
      },
    });
  }

  /** `where`, with the scope its run's forked children may use: where they would go from here. */
  async #withChildren(where: RunPlacement | undefined): Promise<RunPlacement | undefined> {
    const { parallel } = await startSettings(this.opts.limits(), this.opts.autoPlacement);
    if (!parallel) return where;
    const children: ChildrenScope = { space: parallel.space, cloud: parallel.cloud ?? false, ...(parallel.maxCostUsd !== undefined ? { maxCostUsd: parallel.maxCostUsd } : {}) };
    return { ...where, children };
  }

  async #steps(sessionId: string): Promise<number> {
    const session = await Session.open(this.opts.data.store, sessionId);
    return (await session.checkpoint(await session.head())).counters.steps;
  }

  #refuseWhileMoving(entry: Entry): void {
    const { state } = entry.placement;
    if (state === 'moving' || state === 'returning') {
      throw new FerryError('relay/move-busy', `The session ${state === 'moving' ? `is moving to ${entry.placement.name}` : 'is coming back to this device'}; wait for that to finish, then try again.`);
    }
  }

  #set(sessionId: string, entry: Entry, placement: Placement): void {
    entry.placement = placement;
    this.#placed(sessionId, placement);
  }

  #placed(sessionId: string, placement: Placement): void {
    // The session list says where each session runs; it is informative, so a failed write only leaves it stale.
    if (placement.state === 'here' || placement.state === 'away') void this.opts.data.sessions.setRunsOn(sessionId, placement.name).catch(() => undefined);
    this.opts.onPlacement(sessionId, placement);
    this.#tabs.post({ type: 'placement', session: sessionId, placement });
  }
}

/**
 * What a session here starts with that may change while it is open: Settings' engine limits, and where a step's
 * forked children run — across this device's space (its other devices offering themselves, the relay's workers that
 * charge nothing, and under "Any node" those that charge, within the budget) unless the privacy keeps everything here.
 */
export async function startSettings(limits: EngineLimits, autoPlacement: (() => Promise<AutoPlacementContext | undefined>) | undefined): Promise<StartSettings> {
  const context = await autoPlacement?.();
  const parallel = context?.space && context.prefs.privacy !== 'this-device' && /^https?:\/\//i.test(context.relay)
    ? {
        relayUrl: context.relay,
        space: context.space,
        cloud: context.prefs.privacy === 'any',
        ...(context.self ? { host: context.self } : {}),
        ...(context.prefs.budgetUsd !== undefined ? { maxCostUsd: context.prefs.budgetUsd } : {}),
      }
    : undefined;
  return { limits, parallel };
}
