import * as v from 'valibot';
import { FerryError, type SerializedError } from '../core/errors.ts';
import { ChildProgressSchema } from '../core/runtime/index.ts';
import type { Session } from '../core/session/index.ts';
import type { ObjectId } from '../core/store/index.ts';
import type { RunPlacement } from '../core/protocol/index.ts';
import type { PendingInput, SessionMeta, SessionTree, TranscriptStep } from '../browser/app-state.ts';
import type { PlacedEvent, Placement } from '../browser/session-mover.ts';
import { ui } from './app.svelte.ts';
import { foldChildProgress, type ChildrenView } from './children-progress.ts';
import { describeError, type UiError } from './errors.ts';
import { ReplyTracker } from './replies.ts';
import { retryBranchName, retryPoint } from './retry.ts';

/** What the agent is doing right now, before its step is checkpointed and read back from the store. */
export interface LiveTurn {
  /** The message sent, until the checkpoint holding it is read back. */
  user: string | null;
  /**
   * Generations and replies (what a reply adds: replies.ts) finished in this run but not yet shown from the store
   * (the cloud's stay until it comes back).
   */
  done: { text: string; where: 'device' | 'cloud'; reply?: true }[];
  /** The generation streaming now. */
  text: string;
  where: 'device' | 'cloud';
  tools: { callId: string; tool: string; args: string; ok?: boolean }[];
  /** A step's forked children running now (on the space's nodes, or here one by one); null when none. */
  children: ChildrenView | null;
}

const IDLE: LiveTurn = { user: null, done: [], text: '', where: 'device', tools: [], children: null };

/**
 * One open session: its transcript on the current branch, its checkpoint tree, the live turn of its agent, where it
 * runs, and the operations on it. The transcript is always what the store holds; the live turn only bridges the
 * time until the next checkpoint lands.
 */
export class OpenSession {
  meta = $state.raw<SessionMeta | null>(null);
  steps = $state.raw<TranscriptStep[]>([]);
  tree = $state.raw<SessionTree | null>(null);
  branch = $state('');
  loadError = $state.raw<UiError | null>(null);
  loading = $state(true);
  busy = $state(false);
  /** Runs in flight (a message's, a cloud run after a move, a continuation after a move back). */
  #runs = $state(0);
  live = $state.raw<LiveTurn>(IDLE);
  placement = $state<Placement>('device');
  /** Away on one of the space's devices: its name (null: here, or on a cloud worker). */
  awayOn = $state<string | null>(null);
  /** The message sent last that no checkpoint holds yet (app-state.ts PendingInput). */
  pending = $state.raw<PendingInput | null>(null);
  #session: Session | null = null;
  /** Tokens arrive faster than frames: they are added to the live text once per frame. */
  #pendingText = '';
  #frame = 0;
  #stopWatching: (() => void) | undefined;
  #reloading: Promise<void> | undefined;

  constructor(readonly id: string) {}

  /** The agent is working on this session, here or in the cloud. */
  get running(): boolean {
    return this.#runs > 0;
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

  async load(): Promise<void> {
    this.loading = true;
    this.#stopWatching = ui.watch(this.id, { event: (e) => this.#onEvent(e), placement: (p) => void this.#onPlacement(p) });
    let away = false;
    try {
      const app = ui.app;
      const [meta, session] = await Promise.all([app.get(this.id), app.openSession(this.id)]);
      this.#session = session;
      this.meta = meta;
      this.branch = session.branch;
      const [steps, pending, cloud] = await Promise.all([app.transcript(session), app.pendingInput(session), app.cloudRecord(this.id)]);
      this.steps = steps;
      this.pending = pending;
      this.loadError = null;
      // The page's agent may still run this session (the screen was left and opened again): show where.
      if (ui.agentLoaded) this.placement = (await ui.agent()).placement(this.id);
      away = this.placement === 'device' && cloud !== undefined;
    } catch (err) {
      this.loadError = describeError(err);
    } finally {
      this.loading = false;
    }
    if (this.loadError) return;
    // An entry catalogued before templates were read from the agent (imports were all "assistant") is checked once.
    if (this.meta && this.meta.agent === undefined) {
      const checked = await ui.attempt(() => ui.app.checkTemplate(this.id));
      if (checked) this.meta = checked;
    }
    if (away) {
      // After a reload: this device left the session in the cloud; it catches up and follows its run again.
      const ok = await ui.attempt(async () => {
        this.placement = await (await ui.agent()).resume(this.id, ui.requireModel());
        return true;
      });
      if (ok) await this.reload();
    }
    if (ui.agentLoaded && (await ui.agent()).running(this.id)) await this.#rejoin();
  }

  /** A run of this session goes on (started before this screen opened): show it live and count it. */
  async #rejoin(): Promise<void> {
    // The message sent last, if no checkpoint holds it yet, is the one being worked on.
    this.live = { ...IDLE, where: this.placement === 'cloud' ? 'cloud' : 'device', user: this.pending?.text ?? null };
    await this.#follow();
  }

  /** The screen closed: the agent keeps running, but its events no longer come here. */
  close(): void {
    this.#stopWatching?.();
    cancelAnimationFrame(this.#frame);
  }

  async loadTree(): Promise<void> {
    if (!this.#session) return;
    const tree = await ui.attempt(() => ui.app.tree(this.#session!));
    if (tree) this.tree = tree;
  }

  get session(): Session {
    if (!this.#session) throw new Error('The session is still opening.');
    return this.#session;
  }

  /** Runs a change of the tree, then reloads the transcript, the tree (if shown) and the list entry. */
  private async change(fn: (s: Session) => Promise<unknown>, done?: string): Promise<boolean> {
    if (!this.#session || this.busy) return false;
    if (this.placement !== 'device') {
      ui.fail(new FerryError('relay/move-busy', 'The session runs in the cloud worker; bring it back before changing its branches.'));
      return false;
    }
    this.busy = true;
    try {
      const ok = (await ui.attempt(async () => {
        await fn(this.#session!);
        return true;
      })) === true;
      await this.reload();
      if (ok && done) ui.notify(done);
      return ok;
    } finally {
      this.busy = false;
    }
  }

  /** Reads the transcript again; `shown` drops the live parts it now holds, in the same update (no flash of both). */
  private reload(shown?: () => void): Promise<void> {
    // Checkpoints land one after another: one read at a time, the last one wins.
    const run = (this.#reloading ?? Promise.resolve()).then(async () => {
      const s = this.#session!;
      this.branch = s.branch;
      await ui.attempt(async () => {
        const steps = await ui.app.transcript(s);
        // A message whose checkpoint is now in the store has landed: its pending record goes, in the same update.
        const pending = this.pending && (await ui.app.pendingInput(s));
        this.steps = steps;
        this.pending = pending;
        shown?.();
        this.meta = await ui.app.get(s.id);
        if (this.tree) this.tree = await ui.app.tree(s);
      });
    });
    this.#reloading = run;
    void ui.refresh();
    return run;
  }

  /**
   * Sends a message to the agent where the session runs; its reply streams into `live`. The message is kept on this
   * device until the checkpoint of the step that takes it lands, so a tab that dies first offers it again.
   */
  async send(text: string): Promise<boolean> {
    if (!this.#session || this.busy || this.running) return false;
    const body = text.trim();
    this.#runs++;
    this.live = { ...IDLE, user: body, where: this.placement === 'cloud' ? 'cloud' : 'device' };
    try {
      const ok = await ui.attempt(async () => {
        const model = ui.requireModel();
        if (this.agentMissing) throw new FerryError('app/unknown-agent', this.agentMissing);
        if (body) this.pending = await ui.app.savePending(this.#session!, body);
        await (await ui.agent()).send(this.id, model, body);
        return true;
      });
      return ok === true;
    } finally {
      await this.#settle();
    }
  }

  /** Sends the unsent message again. */
  resend(): Promise<boolean> {
    const text = this.pending?.text;
    return text ? this.send(text) : Promise.resolve(false);
  }

  /** Forgets the unsent message (the user does not want it sent). */
  async discardUnsent(): Promise<void> {
    if (await ui.attempt(async () => (await ui.app.clearPending(this.id), true))) this.pending = null;
  }

  /** Whether "Retry" can regenerate the last reply now. */
  get canRetry(): boolean {
    return !this.busy && !this.running && this.placement === 'device' && retryPoint(this.steps) !== null;
  }

  /**
   * Regenerates the last reply: the old reply is kept as a fork ("<branch>-tryN", at the current head, shown in the
   * checkpoint tree and comparable), the branch rolls back to before the last message (also in the reflog), and
   * the same message is sent again.
   */
  async retry(): Promise<boolean> {
    const point = retryPoint(this.steps);
    if (!point || this.running) return false;
    let kept = '';
    const ok = await this.change(async (s) => {
      const cp = await s.checkpoint(point.stepId);
      if (cp.parent === null) throw new FerryError('app/nothing-to-undo', 'The last message has no checkpoint before it to roll back to.');
      kept = retryBranchName(s.branch, (await s.branches()).map((b) => b.name));
      await ui.app.fork(s, await s.head(), kept, false);
      await ui.app.rollback(s, cp.parent);
    });
    if (!ok) return false;
    ui.notify(`Retrying. The previous reply is kept on branch "${kept}".`);
    return this.send(point.text);
  }

  /** Counts the run that goes on after a move (in the cloud, or continuing here) until it pauses. */
  async #follow(): Promise<void> {
    this.#runs++;
    try {
      await (await ui.agent()).settled();
    } finally {
      await this.#settle();
    }
  }

  /**
   * Stops the run: the generation in flight ends "stopped", is checkpointed, and the session waits for you — here,
   * or in the cloud (the cloud run hands back its checkpoint; the next message starts a new run there).
   */
  async stop(): Promise<void> {
    await ui.attempt(async () => (await ui.agent()).cancel(this.id));
  }

  /** Moves the session where `where` places it: a cloud worker (any, without it), or a device `name` of this device's space. */
  async moveToCloud(where?: RunPlacement, name?: string): Promise<void> {
    const ok = await ui.attempt(async () => {
      if (this.agentMissing) throw new FerryError('app/unknown-agent', this.agentMissing);
      await (await ui.agent()).moveToCloud(this.id, ui.requireModel(), where, name);
      return true;
    });
    if (!ok) return;
    ui.notify(where?.space && name ? `The session moved to ${name}.` : 'The session moved to the cloud worker.');
    await this.#follow();
  }

  async bringBack(): Promise<void> {
    const ok = await ui.attempt(async () => {
      await (await ui.agent()).bringBack(this.id);
      return true;
    });
    if (!ok) return;
    ui.notify('The session is back on this device.');
    await this.#follow();
  }

  fork(at: ObjectId, name: string): Promise<boolean> {
    return this.change((s) => ui.app.fork(s, at, name), `Forked: now on branch "${name}".`);
  }

  async rollback(to: ObjectId): Promise<boolean> {
    const ok = await this.change((s) => ui.app.rollback(s, to));
    if (ok) ui.notify(`Rolled "${this.branch}" back.`, { label: 'Undo', run: () => void this.undoRollback() });
    return ok;
  }

  undoRollback(): Promise<boolean> {
    return this.change((s) => ui.app.undoRollback(s), 'Rollback undone.');
  }

  switchBranch(name: string): Promise<boolean> {
    return this.change((s) => ui.app.switchBranch(s, name), `Switched to branch "${name}".`);
  }

  compare(a: string, b: string) {
    return ui.attempt(() => ui.app.compare(this.session, a, b));
  }

  /**
   * Ends a run: the transcript is read again (which also clears a message that has landed) before the run stops
   * counting, so a landed message is never shown as unsent in between.
   */
  async #settle(): Promise<void> {
    let counted = true;
    const end = (): void => {
      if (!counted) return;
      counted = false;
      this.#runs--;
    };
    try {
      await this.#reread(end);
    } finally {
      end();
    }
  }

  /** After a run or a move back: the store has every checkpoint, so the live turn gives way to the transcript. */
  async #reread(shown: () => void): Promise<void> {
    this.#flush();
    if (this.placement === 'device') {
      await ui.attempt(() => ui.app.ran(this.session));
      // A generation resumed after a move back keeps streaming; everything finished is in the transcript now.
      await this.reload(() => ((this.live = { ...IDLE, text: this.live.text, where: this.live.where }), shown()));
    } else {
      // The cloud's checkpoints were copied here as they were published; what is left live never reached one.
      this.live = { ...this.live, user: null, done: this.live.text ? [...this.live.done, { text: this.live.text, where: this.live.where }] : this.live.done, text: '' };
      await this.reload(shown);
    }
  }

  async #onPlacement(placement: Placement): Promise<void> {
    this.placement = placement;
    this.awayOn = placement === 'device' ? null : ((await ui.agent()).awayOn(this.id) ?? null);
    if (placement === 'cloud' || placement === 'device') {
      const meta = await ui.attempt(() => ui.app.setRunsOn(this.id, placement === 'device' ? 'This device' : (this.awayOn ?? 'Cloud worker')));
      if (meta) this.meta = meta;
      void ui.refresh();
    }
  }

  #onEvent({ where, event }: PlacedEvent): void {
    switch (event.type) {
      case 'token':
        if (typeof event.text !== 'string') return;
        if (this.live.where !== where && this.live.text) this.#flush();
        if (this.live.where !== where) this.live = { ...this.live, where };
        this.#pendingText += event.text;
        this.#frame ||= requestAnimationFrame(() => this.#flush());
        return;
      case 'generation':
        this.#flush();
        this.live = { ...this.live, done: [...this.live.done, { text: this.live.text, where }], text: '' };
        return;
      case 'reply': {
        const shown = this.#replyShown(String(event.text));
        if (shown) this.live = { ...this.live, done: [...this.live.done, { text: shown, where, reply: true }] };
        return;
      }
      case 'tool-call':
        this.live = { ...this.live, tools: [...this.live.tools, { callId: String(event.callId), tool: String(event.tool), args: String(event.args) }] };
        return;
      case 'child-progress': {
        // A cloud run's events come over the relay: only well-formed progress is shown.
        const progress = v.safeParse(ChildProgressSchema, event.progress);
        // The parent waits on its children (nothing streams meanwhile): the turn is where they report from.
        if (progress.success) this.live = { ...this.live, where, children: foldChildProgress(this.live.children, progress.output) };
        return;
      }
      case 'tool-result':
        this.live = { ...this.live, tools: this.live.tools.map((t) => (t.callId === event.callId ? { ...t, ok: event.ok === true } : t)) };
        return;
      case 'checkpoint':
        // A device checkpoint is in the store: read it back, and drop the live parts it now shows.
        if (where === 'device') void this.#caughtUp('device');
        return;
      case 'published':
        // A cloud checkpoint: the mover copied it into the store before passing this on.
        if (where === 'cloud') void this.#caughtUp('cloud');
        return;
      case 'notice':
        ui.notify(String(event.message));
        return;
      case 'step-failed':
      case 'error':
        ui.fail(FerryError.fromJSON(toSerialized(event)));
        return;
    }
  }

  /** The store now holds every step `where` has streamed so far: those live parts give way to the transcript. */
  async #caughtUp(where: 'device' | 'cloud'): Promise<void> {
    const shown = this.live.done.filter((d) => d.where === where).length;
    const tools = this.live.tools.length;
    if (where === 'cloud') await ui.attempt(() => ui.app.ran(this.session));
    await this.reload(() => {
      let drop = shown;
      this.live = { ...this.live, user: null, done: this.live.done.filter((d) => d.where !== where || drop-- <= 0), tools: this.live.tools.slice(tools) };
    });
  }

  /** What a reply streamed now adds to the transcript and the live turn before it. */
  #replyShown(text: string): string {
    const tracker = new ReplyTracker();
    for (const step of this.steps) for (const event of step.events) tracker.next(event);
    for (const d of this.live.done) tracker.next(d.reply ? { type: 'reply', text: d.text } : { type: 'generation', text: d.text });
    return tracker.next({ type: 'reply', text }) ?? '';
  }

  #flush(): void {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    if (!this.#pendingText) return;
    this.live = { ...this.live, text: this.live.text + this.#pendingText };
    this.#pendingText = '';
  }
}

/** A failure event's error (a step's, or a cloud run's) as the serialized FerryError it carries. */
function toSerialized(event: { type: string; [k: string]: unknown }): SerializedError {
  const e = (event.error ?? event) as { code?: unknown; message?: unknown };
  const code = typeof e.code === 'string' && e.code.includes('/') ? (e.code as SerializedError['code']) : 'runtime/failed';
  return { name: 'FerryError', code, message: typeof e.message === 'string' ? e.message : 'The agent run failed. Try again.' };
}
