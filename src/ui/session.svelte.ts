import type { SessionMeta } from '../browser/catalogue.ts';
import type { PendingInput } from '../browser/session-records.ts';
import type { MoveTarget, Placement } from '../browser/placement.ts';
import { FerryError } from '../core/errors.ts';
import type { HostCall } from '../core/runtime/loop.ts';
import type { RunnerEvent } from '../core/host/index.ts';
import type { Session, SessionTree, TranscriptStep } from '../core/session/index.ts';
import { ui } from './app.svelte.ts';
import { describeError, type UiError } from './errors.ts';
import { IDLE, caughtUp, foldEvent, placeOf, type LiveTurn } from './live-turn.ts';
import { liveReplyView } from './replies.ts';
import { FrameBatch } from './frame-batch.ts';
import { RunCount } from './run-count.svelte.ts';

const HERE: Placement = { state: 'here', name: 'This device' };

/**
 * One open session: its transcript on the current branch, the live turn of its agent, where it runs, and the
 * operations on it. The transcript is always what the store holds; the live turn only bridges the time until the
 * next checkpoint is read back. Where the session runs is the session host's business: this screen hears the same
 * events either way (`checkpoint`: the step is in this device's store).
 */
export class OpenSession {
  meta = $state.raw<SessionMeta | null>(null);
  steps = $state.raw<TranscriptStep[]>([]);
  tree = $state.raw<SessionTree | null>(null);
  branch = $state('');
  loadError = $state.raw<UiError | null>(null);
  loading = $state(true);
  busy = $state(false);
  live = $state.raw<LiveTurn>(IDLE);
  placement = $state.raw<Placement>(HERE);
  /** The message sent last that no checkpoint holds yet (session-records.ts PendingInput). */
  pending = $state.raw<PendingInput | null>(null);
  #session: Session | null = null;
  /** Tokens arrive faster than frames: they are added to the live text once per frame. */
  #tokens = new FrameBatch((text) => (this.live = { ...this.live, text: this.live.text + text }));
  #stopWatching: (() => void) | undefined;
  #reloading: Promise<void> | undefined;
  /** Runs in flight (a message's, a run going on after a move) that this screen counts. */
  #runs = new RunCount((end) => this.#settle(end));

  constructor(readonly id: string) {}

  /** The agent is working on this session, wherever it runs. */
  get running(): boolean {
    return this.#runs.running;
  }

  /**
   * The only run going on is the one a move left, and nothing streams from it (no step was cut, so it ends at once):
   * a message may be sent, and goes once it has.
   */
  get settlingMove(): boolean {
    return this.#runs.onlyMove && this.live.text === '';
  }

  /** Runs here: branch work and the workspace's own changes are possible. */
  get here(): boolean {
    return this.placement.state === 'here';
  }

  /** A message that was sent but never reached a checkpoint (the page closed, or the run failed first): offered again. */
  get unsent(): PendingInput | null {
    return this.running ? null : this.pending;
  }

  /** Why no agent can continue this session here, or null when one can. */
  get agentMissing(): string | null {
    return this.meta?.template === 'unknown'
      ? "This session's agent is not one this version of Ferry has (it was imported from another version, or written without an agent), so it cannot continue here. You can read, fork, export and share it."
      : null;
  }

  get session(): Session {
    if (!this.#session) throw new FerryError('app/not-ready', 'The session is still opening; try again in a moment.');
    return this.#session;
  }

  async load(): Promise<void> {
    this.loading = true;
    this.#stopWatching = ui.watch(this.id, { event: (e, p) => this.#onEvent(e, p), placement: (p) => (this.placement = p), run: (text) => void this.#join(text) });
    let away = false;
    let speculative = false;
    try {
      const app = ui.app;
      const [meta, session] = await Promise.all([app.sessions.get(this.id), app.openSession(this.id)]);
      this.#session = session;
      this.meta = meta;
      this.branch = session.branch;
      const [steps, pending, record] = await Promise.all([app.transcripts.steps(session), app.records.pendingInput(session), app.records.placement(this.id)]);
      this.steps = steps;
      this.pending = pending;
      this.loadError = null;
      // The page may still run this session (the screen was left and opened again), or another tab does: show where.
      // (Its code not loaded — offline before it was cached — nothing runs here to follow or show.)
      const host = await ui.host().catch(() => undefined);
      if (host) this.placement = (await host.follow(this.id)) ?? host.placement(this.id);
      away = this.here && record !== undefined;
      speculative = this.here && meta.speculative === true && ui.model !== null;
    } catch (err) {
      this.loadError = describeError(err);
    } finally {
      this.loading = false;
    }
    if (this.loadError) return;
    // An entry listed before templates were read from the agent (imports were all "assistant") is checked once.
    if (this.meta && this.meta.agent === undefined) {
      const checked = await ui.attempt(() => ui.app.sessions.checkTemplate(this.id));
      if (checked) this.meta = checked;
    }
    // After a reload: this device left the session on another node; it catches up and follows it again. One it ran
    // here speculatively runs so again.
    if ((away || speculative) && (await ui.attempt(async () => (this.placement = await (await ui.host()).resume(this.id, ui.requireModel())))) && away) await this.reload();
    if (ui.hostLoaded && (await ui.host()).running(this.id)) {
      // The message sent last, if no checkpoint holds it yet, is the one being worked on.
      if (this.placement.otherTab) return this.#join(this.pending?.text ?? null);
      this.live = { ...IDLE, place: placeOf(this.placement), user: this.pending?.text ?? null };
      await this.#follow();
    }
  }

  /** The screen closed: the agent keeps running, but its events no longer come here. */
  close(): void {
    this.#stopWatching?.();
    this.#tokens.cancel();
  }

  async loadTree(): Promise<void> {
    if (!this.#session) return;
    const tree = await ui.attempt(() => ui.app.transcripts.tree(this.#session!));
    if (tree) this.tree = tree;
  }

  /** Reads the transcript again; `shown` drops the live parts it now holds, in the same update (no flash of both). */
  reload(shown?: () => void): Promise<void> {
    // Checkpoints land one after another: one read at a time, the last one wins.
    const run = (this.#reloading ?? Promise.resolve()).then(async () => {
      const s = this.#session!;
      this.branch = s.branch;
      await ui.attempt(async () => {
        const steps = await ui.app.transcripts.steps(s);
        // A message whose checkpoint is now in the store has landed: its pending record goes, in the same update. One
        // another tab sent is read too: should that tab die before its step lands, the message is offered here.
        const pending = await ui.app.records.pendingInput(s);
        this.steps = steps;
        this.pending = pending;
        shown?.();
        this.meta = await ui.app.sessions.get(s.id);
        if (this.tree) this.tree = await ui.app.transcripts.tree(s);
      });
    });
    this.#reloading = run;
    void ui.refresh();
    return run;
  }

  /**
   * Sends a message to the agent, wherever the session runs; its reply streams into `live`. The message is shown as
   * sent (and `saved` is called, so the composer may let go of it) only once this device has stored it: until the
   * checkpoint of the step that takes it lands, a tab that dies offers it again.
   */
  send(text: string, saved?: () => void): Promise<boolean> {
    const body = text.trim();
    return this.#run(async (model) => {
      if (body) this.pending = await ui.app.records.savePending(this.#session!, body);
      this.live = { ...IDLE, user: body, place: placeOf(this.placement) };
      saved?.();
      await (await ui.host()).send(this.id, model, body);
    });
  }

  /**
   * Adds the person's content (files into the workspace, sources into docs) through the session's own tools, as
   * host steps on this device, one per batch; their tool calls stream into the live turn and land in the transcript
   * like the agent's. Resolves with the steps the transcript then ends with (empty when nothing was added).
   */
  async addContent(batches: HostCall[][]): Promise<TranscriptStep[]> {
    if (batches.length === 0) return [];
    const ok = await this.#run(async (model) => {
      this.live = { ...IDLE, place: placeOf(this.placement) };
      await (await ui.host()).addContent(this.id, model, batches);
    });
    return ok ? this.steps.slice(-batches.length) : [];
  }

  /** One run here (a message, or content added): not while another runs; true when it ran; the transcript settles after. */
  async #run(work: (model: ReturnType<typeof ui.requireModel>) => Promise<void>): Promise<boolean> {
    // Right after a move the session is taken over there (a cut step continues): the run starts once that pauses.
    if (this.settlingMove) await this.#runs.moveSettled();
    if (!this.#session || this.busy || this.running) return false;
    // What failed before is dealt with by this run, or fails again.
    ui.clearErrors(this.id);
    const ok = await this.#runs.count(() =>
      ui.attempt(async () => {
        const model = ui.requireModel();
        if (this.agentMissing) throw new FerryError('app/unknown-agent', this.agentMissing);
        await work(model);
        return true;
      }, this.id),
    );
    return ok === true;
  }

  /** Sends the unsent message again. */
  resend(): Promise<boolean> {
    const text = this.pending?.text;
    return text ? this.send(text) : Promise.resolve(false);
  }

  /** Forgets the unsent message (the user does not want it sent). */
  async discardUnsent(): Promise<void> {
    if (!(await ui.attempt(async () => (await ui.app.records.clearPending(this.id), true)))) return;
    this.pending = null;
    ui.clearErrors(this.id);
  }

  /** Stops the run where it is: the generation in flight ends "stopped", is checkpointed, and the session waits there. */
  async stop(): Promise<void> {
    await ui.attempt(async () => (await ui.host()).stop(this.id), this.id);
  }

  /** Moves the session: to a cloud worker or one of the space's devices (`name` for people), or back here. */
  async move(target: MoveTarget): Promise<void> {
    const ok = await ui.attempt(async () => {
      if (this.agentMissing) throw new FerryError('app/unknown-agent', this.agentMissing);
      await (await ui.host()).move(this.id, ui.requireModel(), target);
      return true;
    }, this.id);
    if (!ok) return;
    ui.notify(target.here ? (target.speculative ? 'The session runs on this device, verified by the cloud worker.' : 'The session is back on this device.') : `The session moved to ${this.placement.name === 'Cloud worker' ? 'the cloud worker' : this.placement.name}.`);
    await this.#follow();
  }

  /** Counts the run that goes on after a move (there, or continuing here) until it pauses. */
  #follow(): Promise<void> {
    return this.#runs.afterMove(() => this.#paused());
  }

  /** Shows a run this screen did not start (`user`: its message) until it pauses. */
  async #join(user: string | null): Promise<void> {
    // Still opening: load() joins it once the session is read.
    if (!this.#session) return;
    this.live = { ...IDLE, place: placeOf(this.placement), user };
    await this.#runs.count(() => this.#paused());
  }

  /** Resolves when no run of the session goes on, wherever it runs. */
  async #paused(): Promise<void> {
    await (await ui.host()).settled(this.id);
  }

  /** Ends a run: the transcript is read again (which also clears a message that has landed), then `end` stops counting it. */
  async #settle(end: () => void): Promise<void> {
    this.#tokens.flush();
    if (this.#session) await ui.attempt(() => ui.app.sessions.ran(this.#session!));
    // A generation resumed after a move keeps streaming; everything finished is in the transcript now.
    await this.reload(() => ((this.live = { ...IDLE, text: this.live.text, place: this.live.place }), end()));
  }

  #onEvent(event: RunnerEvent, placement: Placement): void {
    const place = placeOf(placement);
    switch (event.type) {
      case 'token':
        if (this.live.place.name !== place.name && this.live.text) this.#tokens.flush();
        if (this.live.place.name !== place.name) this.live = { ...this.live, place };
        this.#tokens.add(event.text);
        return;
      case 'checkpoint':
        // The step is in this device's store: read it back, and drop the live parts it now shows.
        void this.#caughtUp();
        return;
      case 'notice':
        ui.notify(event.message);
        return;
      case 'step-failed':
        ui.fail(FerryError.fromJSON(event.error), this.id);
        return;
      case 'error':
        ui.fail(new FerryError(event.code, event.message), this.id);
        return;
      default:
        if (event.type === 'generation') this.#tokens.flush();
        this.live = foldEvent(this.live, event, place, (text) => liveReplyView(this.steps, this.live.done, text));
    }
  }

  /** The store now holds every step streamed so far: those live parts give way to the transcript. */
  async #caughtUp(): Promise<void> {
    this.#tokens.flush();
    const { done, tools } = this.live;
    await this.reload(() => (this.live = caughtUp(this.live, done.length, tools.length)));
  }
}
