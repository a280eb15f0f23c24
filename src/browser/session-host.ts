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
 * One tab of this browser runs a session at a time: the one holding its lock, taken when the tab first runs it. The
 * other tabs follow it (other-tabs.ts): they hear its runs and events, send it their messages once saved as pending
 * input, ask it to stop, and take the session over when that tab closes or crashes.
 */
import { FerryError } from '../core/errors.ts';
import type { Decision } from '../core/placement/index.ts';
import type { RunPlacement } from '../core/protocol/index.ts';
import { move, RelayRunner, type RelayRunnerOptions, type RunnerEvent, type SessionRunner } from '../core/host/index.ts';
import type { HostCall, RunInput } from '../core/runtime/loop.ts';
import { Session } from '../core/session/index.ts';
import { AutoPlacer, type AutoPlacementContext } from './auto-placement.ts';
import type { DeviceWorker } from './device-worker.ts';
import type { EngineLimits } from './engine-choice.ts';
import type { LocalData } from './local-data.ts';
import { nextStep } from './next-step.ts';
import { OtherTabs } from './other-tabs.ts';
import { CLOUD, HERE, SPECULATIVE, moveFailure, ranSpeculatively, refuseWhileMoving, targetOf, verifyUrl, type MoveTarget, type Placement } from './placement.ts';
import { comeBack, followAgain, followOptions, letGo } from './relay-follow.ts';
import type { ModelChoice } from './settings.ts';
import { withChildren } from './start-settings.ts';

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
  /** A run began that this page's screen did not start: another tab's (`text`: its message), or one run here for another tab. */
  onRun?(sessionId: string, text: string | null): void;
}

interface Entry {
  runner: SessionRunner;
  placement: Placement;
  placer: AutoPlacer | undefined;
  /** Runs here speculatively: drafted here, verified by the relay's worker. */
  speculative?: boolean;
  /** The move going on, settled once the session is where it ends up. */
  moving?: Promise<void>;
}

export class SessionHost {
  readonly #entries = new Map<string, Entry>();
  readonly #tabs: OtherTabs;

  constructor(private readonly opts: SessionHostOptions) {
    this.#tabs = new OtherTabs({
      has: (id) => this.#entries.has(id),
      placement: (id) => this.placement(id),
      settled: (id) => this.settled(id),
      run: (id, text) => this.#send(id, opts.model(), text, true),
      stop: (id) => this.stop(id),
      release: (id) => this.release(id),
      tookOver: (id) => this.#tookOver(id),
      onEvent: opts.onEvent,
      onPlacement: opts.onPlacement,
      ...(opts.onRun ? { onRun: opts.onRun } : {}),
    });
  }

  placement(sessionId: string): Placement {
    return this.#tabs.placement(sessionId) ?? this.#entries.get(sessionId)?.placement ?? { state: 'here', name: HERE };
  }

  /** The session was brought here by hand: automatic placement leaves it here while this page is open. */
  held(sessionId: string): boolean {
    const entry = this.#entries.get(sessionId);
    // An entry without a placer was followed away after a reload: here, it can only have been brought back.
    return entry !== undefined && (entry.placer ? entry.placer.held : this.opts.autoPlacement !== undefined);
  }

  running(sessionId: string): boolean {
    return this.#tabs.running(sessionId) || (this.#entries.get(sessionId)?.runner.running ?? false);
  }

  /** Resolves when no run of the session goes on (here, followed on the relay, or in another tab). */
  async settled(sessionId: string): Promise<void> {
    await this.#tabs.settled(sessionId);
    await this.#entries.get(sessionId)?.runner.settled();
  }

  /** When another tab runs the session, this one follows it: returns where it runs; undefined when no other tab does. */
  async follow(sessionId: string): Promise<Placement | undefined> {
    return this.#entries.has(sessionId) ? undefined : this.#tabs.follow(sessionId);
  }

  /** Creates a session of `template` in the store, under the chosen model. */
  create(template: Parameters<DeviceWorker['create']>[0], model: ModelChoice): Promise<{ sessionId: string; agent: string }> {
    return this.opts.worker.create(template, model);
  }

  /** After a reload, a session this device left on a relay's node is followed again (its store catches up first), one left running here speculatively runs so again; returns where it is. */
  async resume(sessionId: string, model: ModelChoice): Promise<Placement> {
    const entry = this.#entries.get(sessionId);
    if (entry) return entry.placement;
    if (!(await this.#tabs.own(sessionId))) return this.placement(sessionId);
    const followed = await followAgain(sessionId, this.opts.data, this.#relayOptions(sessionId, model));
    if (!followed) return (await ranSpeculatively(this.opts.data, sessionId)) ? (await this.#entry(sessionId, model)).placement : this.placement(sessionId);
    const away: Entry = { runner: followed.runner, placement: { state: 'away', name: followed.name }, placer: undefined };
    this.#entries.set(sessionId, away);
    this.#placed(sessionId, away.placement);
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
    if (!(await this.#tabs.own(sessionId))) {
      // Another tab runs it; should that tab close first, this one runs it, unless a checkpoint there holds it (it is no longer pending).
      if ((await this.#tabs.ask(sessionId, body)) === 'taken-over' && (await this.opts.data.records.pendingInput(await this.opts.data.openSession(sessionId)))?.text === body) await this.send(sessionId, model, body);
      return;
    }
    const entry = await this.#entry(sessionId, model);
    refuseWhileMoving(entry.placement);
    const session = await Session.open(this.opts.data.store, sessionId);
    const input: RunInput = (await session.checkpoint(await session.head())).counters.steps === 0 ? { type: 'start', task: body } : { type: 'user', text: body };
    if (entry.placement.state === 'here') {
      const placed = await entry.placer?.beforeStep(entry.speculative === true);
      if (placed) await this.#autoMove(sessionId, model, placed.where, placed.decision);
    }
    // A move asked while the placement was decided (Move pressed just after Send) stops the runner it leaves: the
    // message goes to the one that holds the session once it has landed, never to the one left behind.
    while (entry.moving) await entry.moving;
    await this.#tabs.announce(sessionId, body, entry.runner.send(input), asked);
  }

  /**
   * Runs the session's own tools on content the person adds (files into its workspace, sources into its docs), as
   * host steps checkpointed in its store, one per batch — on this device only: a session away is brought back first.
   */
  async addContent(sessionId: string, model: ModelChoice, batches: readonly HostCall[][]): Promise<void> {
    await this.#tabs.refuseIfOther(sessionId, 'add content to it');
    const entry = await this.#entry(sessionId, model);
    refuseWhileMoving(entry.placement);
    const run = (async () => {
      for (const calls of batches) await entry.runner.send({ type: 'tools', calls });
    })();
    await this.#tabs.announce(sessionId, null, run);
  }

  /** Stops the run where it is: the generation in flight is cut and checkpointed; the session stays where it is. */
  async stop(sessionId: string): Promise<void> {
    if (!this.#tabs.stop(sessionId)) await this.#entries.get(sessionId)?.runner.stop();
  }

  /** Moves the session: here (plainly, or drafting for the relay's worker to verify), or to a relay's node (its children keep this device's scope). */
  async move(sessionId: string, model: ModelChoice, target: MoveTarget): Promise<void> {
    await this.#tabs.refuseIfOther(sessionId, 'move it');
    const entry = await this.#entry(sessionId, model);
    refuseWhileMoving(entry.placement);
    const speculative = target.here === true && target.speculative === true;
    if (target.here && entry.placement.state === 'here' && (entry.speculative ?? false) === speculative) return;
    const before = entry.placement;
    const name = target.here ? (speculative ? SPECULATIVE : HERE) : target.where?.space ? (target.name ?? 'another device') : CLOUD;
    this.#set(sessionId, entry, { state: target.here && before.state !== 'here' ? 'returning' : 'moving', name });
    let landed!: () => void;
    entry.moving = new Promise<void>((resolve) => (landed = () => ((entry.moving = undefined), resolve())));
    const from = entry.runner;
    let to: SessionRunner | undefined;
    try {
      to = target.here ? this.#hereRunner(sessionId, model, speculative) : new RelayRunner({ ...this.#relayOptions(sessionId, model), where: await withChildren(target.where, this.opts.limits(), this.opts.autoPlacement), name });
      entry.runner = await move(from, to, moveFailure(target.here === true, name));
    } catch (err) {
      await to?.close();
      this.#set(sessionId, entry, before);
      throw err;
    } finally {
      landed();
    }
    await from.close();
    entry.speculative = speculative;
    if (target.here) {
      // Brought here by hand: it stays. Speculative, automatic placement may still decide it runs otherwise.
      if (!speculative) entry.placer?.hold();
      await this.opts.data.records.savePlacement(sessionId, null);
    }
    this.#set(sessionId, entry, { state: target.here ? 'here' : 'away', name });
  }

  /** The session is being deleted on this device: its runner lets it go (relay-follow.ts `letGo`), and so do the other tabs. */
  async release(sessionId: string): Promise<void> {
    const entry = this.#entries.get(sessionId);
    this.#entries.delete(sessionId);
    try {
      if (entry) await letGo(entry.runner);
    } finally {
      await this.#tabs.release(sessionId);
    }
  }

  /** The tab that ran the session let it go, closed or crashed: left on a relay's node, it is followed from this tab now. */
  async #tookOver(sessionId: string): Promise<void> {
    try {
      if ((await this.opts.data.records.placement(sessionId)) !== undefined) await this.resume(sessionId, this.opts.model());
    } finally {
      // Here (or not followed on the relay after all): the page shows it as this tab's now.
      if (!this.#entries.has(sessionId)) this.opts.onPlacement(sessionId, this.placement(sessionId));
    }
  }

  /** The session's entry: here (speculatively when it last ran so, as its list entry keeps), unless a move or a reload made it away. */
  async #entry(sessionId: string, model: ModelChoice): Promise<Entry> {
    const speculative = !this.#entries.has(sessionId) && (await ranSpeculatively(this.opts.data, sessionId));
    let entry = this.#entries.get(sessionId);
    if (!entry) {
      entry = { runner: this.#hereRunner(sessionId, model, speculative), placement: { state: 'here', name: speculative ? SPECULATIVE : HERE }, placer: this.#placer(sessionId, model), speculative };
      this.#entries.set(sessionId, entry);
      // The list says how it runs now (one left on a relay's node and not followed again is here now).
      void this.opts.data.sessions.setRunsOn(sessionId, entry.placement.name, speculative).catch(() => undefined);
    }
    return entry;
  }

  /** A runner in this device's worker: plainly, or drafting for the relay's worker to verify. */
  #hereRunner(sessionId: string, model: ModelChoice, speculative: boolean): SessionRunner {
    return this.opts.worker.runner(sessionId, model, (e) => this.#heard(sessionId, e), speculative ? { verifyUrl: verifyUrl(this.opts.relay()) } : undefined);
  }

  #heard(sessionId: string, event: RunnerEvent): void {
    const entry = this.#entries.get(sessionId);
    if (entry?.placement.state === 'here') entry.placer?.event(event, entry.speculative);
    const placement = entry?.placement ?? this.placement(sessionId);
    this.opts.onEvent(sessionId, event, placement);
    this.#tabs.event(sessionId, event, placement);
  }

  #relayOptions(sessionId: string, model: ModelChoice): RelayRunnerOptions {
    return followOptions(sessionId, this.opts.data, {
      relay: this.opts.relay,
      replyTokens: () => this.opts.limits().replyTokens,
      heard: (e) => this.#heard(sessionId, e),
      reassigned: (name) => {
        const entry = this.#entries.get(sessionId);
        if (entry && name) this.#set(sessionId, entry, { ...entry.placement, name });
      },
      nodeLeft: () => void comeBack(this.#entries.get(sessionId)?.placement.name ?? CLOUD, () => this.move(sessionId, model, { here: true }), (e) => this.#heard(sessionId, e)),
    });
  }

  /** Moves a session that runs here by itself when another node the user allows would do much better (auto-placement.ts). */
  #placer(sessionId: string, model: ModelChoice): AutoPlacer | undefined {
    const context = this.opts.autoPlacement;
    if (!context) return undefined;
    return new AutoPlacer({
      context,
      step: async () => nextStep(await Session.open(this.opts.data.store, sessionId), this.opts.limits(), await this.opts.data.records.prefixKey(sessionId)),
      move: (where, decision) => {
        if (this.placement(sessionId).state !== 'here') return;
        this.#autoMove(sessionId, model, where, decision).catch((err: unknown) => this.#heard(sessionId, { type: 'error', code: 'relay/move-failed', message: err instanceof Error ? err.message : String(err) }));
      },
    });
  }

  /** A move placement decided on, and why (said once it has landed). */
  async #autoMove(sessionId: string, model: ModelChoice, where: RunPlacement | undefined, decision: Decision): Promise<void> {
    await this.move(sessionId, model, targetOf(where, decision));
    this.opts.onAutoMove?.(sessionId, decision.reason);
  }

  #set(sessionId: string, entry: Entry, placement: Placement): void {
    entry.placement = placement;
    this.#placed(sessionId, placement);
  }

  #placed(sessionId: string, placement: Placement): void {
    // The session list says where each session runs (and whether speculatively, to open it so again); a failed write only leaves it stale.
    if (placement.state === 'here' || placement.state === 'away') void this.opts.data.sessions.setRunsOn(sessionId, placement.name, placement.state === 'here' && this.#entries.get(sessionId)?.speculative === true).catch(() => undefined);
    this.opts.onPlacement(sessionId, placement);
    this.#tabs.placed(sessionId, placement);
  }
}

