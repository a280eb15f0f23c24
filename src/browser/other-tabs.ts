/**
 * The session host's dealings with the other tabs of this browser (session-tabs.ts carries the messages and holds
 * the locks). For a session this tab runs, it tells the others of each run (its message, its events, where it runs),
 * answers a tab that opens the session, and runs the messages they send, stops or lets go when they ask. A session
 * another tab runs is followed: where it runs and its run going on are kept here, its events reach this page as if
 * it ran here, and once this tab holds the session's lock (that tab let go, closed or crashed) the host takes over.
 */
import { FerryError, type SerializedError } from '../core/errors.ts';
import type { RunnerEvent } from '../core/host/index.ts';
import type { Placement } from './placement.ts';
import { SessionTabs, type TabMessage } from './session-tabs.ts';

export interface OtherTabsOptions {
  /** Whether this tab has the session's runner. */
  has(sessionId: string): boolean;
  /** Where the session is (the host's answer); resolves when no run of it goes on here. */
  placement(sessionId: string): Placement;
  settled(sessionId: string): Promise<void>;
  /** Runs a message another tab saved as the session's pending input. */
  run(sessionId: string, text: string): Promise<void>;
  stop(sessionId: string): Promise<void>;
  release(sessionId: string): Promise<void>;
  /** This tab holds the session's lock now (the tab that ran it let go, closed or crashed): it may run the session. */
  tookOver(sessionId: string): Promise<void>;
  onEvent(sessionId: string, event: RunnerEvent, placement: Placement): void;
  onPlacement(sessionId: string, placement: Placement): void;
  /** A run began that this page's screen did not start. */
  onRun?(sessionId: string, text: string | null): void;
}

/** A session another tab runs, as this tab follows it. */
interface Followed {
  placement: Placement;
  /** The run going on there, and the call that ends it here. */
  run: { ended: Promise<void>; end(): void } | undefined;
  /** Resolves once this tab holds the session's lock. */
  freed: Promise<void>;
}

const HERE_IN_OTHER_TAB: Placement = { state: 'here', name: 'This device', otherTab: true };

export class OtherTabs {
  readonly #tabs: SessionTabs;
  readonly #followed = new Map<string, Followed>();
  /** This tab's runs going on, per session, with the message of the first: what a tab that opens the session is told. */
  readonly #runs = new Map<string, { text: string | null; count: number }>();
  /** Messages this tab asked another to run, by request, until it answers. */
  readonly #asked = new Map<string, { sessionId: string; answer(error: SerializedError | undefined): void }>();
  /** Messages other tabs sent here run one after another, each once the session's run before it has ended. */
  #turn: Promise<void> = Promise.resolve();

  constructor(private readonly opts: OtherTabsOptions) {
    this.#tabs = new SessionTabs((m) => this.#heard(m));
  }

  /** Takes the session for this tab unless another tab runs it (which this one then follows); true when this tab may run it. */
  async own(sessionId: string): Promise<boolean> {
    if (this.#tabs.owns(sessionId)) return true;
    if (!this.#followed.has(sessionId) && (await this.#tabs.take(sessionId))) return true;
    this.#follow(sessionId);
    return false;
  }

  /** Throws `app/other-tab` (…`what` there…) unless this tab may run the session. */
  async refuseIfOther(sessionId: string, what: string): Promise<void> {
    if (!(await this.own(sessionId))) throw new FerryError('app/other-tab', `This session runs in another tab of this browser; ${what} there, or close that tab and try again here.`);
  }

  /** When another tab runs the session, this one follows it: returns where it runs; undefined when no other tab does. */
  async follow(sessionId: string): Promise<Placement | undefined> {
    if (!(await this.#tabs.heldElsewhere(sessionId))) return undefined;
    const followed = this.#follow(sessionId);
    this.#tabs.post({ type: 'hello', session: sessionId });
    return followed.placement;
  }

  /** Where the session another tab runs is; undefined when this tab does not follow it. */
  placement(sessionId: string): Placement | undefined {
    return this.#followed.get(sessionId)?.placement;
  }

  running(sessionId: string): boolean {
    return this.#followed.get(sessionId)?.run !== undefined;
  }

  async settled(sessionId: string): Promise<void> {
    await this.#followed.get(sessionId)?.run?.ended;
  }

  /**
   * The tab that runs the session runs `text` (already saved here as the session's pending input): resolves once it
   * has, with 'taken-over' when that tab went first (this one may run the session now), or rejects with its failure.
   */
  async ask(sessionId: string, text: string): Promise<'taken-over' | undefined> {
    const followed = this.#follow(sessionId);
    const request = crypto.randomUUID();
    const answered = new Promise<SerializedError | undefined>((answer) => this.#asked.set(request, { sessionId, answer }));
    this.#tabs.post({ type: 'send', session: sessionId, request, text });
    try {
      const answer = await Promise.race([answered.then((error) => ({ error })), followed.freed.then(() => 'taken-over' as const)]);
      if (answer === 'taken-over') return answer;
      if (answer.error) throw FerryError.fromJSON(answer.error);
      return undefined;
    } finally {
      this.#asked.delete(request);
    }
  }

  /** Asks the tab that runs the session to stop it; false when this tab runs it. */
  stop(sessionId: string): boolean {
    if (!this.#followed.has(sessionId)) return false;
    this.#tabs.post({ type: 'stop', session: sessionId });
    return true;
  }

  /** The session was deleted here: the tab that runs it lets it go too, and so does this one. */
  async release(sessionId: string): Promise<void> {
    if (this.#followed.has(sessionId)) this.#tabs.post({ type: 'release', session: sessionId });
    await this.#tabs.release(sessionId);
  }

  /**
   * Tells the other tabs a run of the session began here (`asked`: for one of them, so this page's screen hears of it
   * too) and, once no run of it goes on, that it ended. Returns `run`.
   */
  announce(sessionId: string, text: string | null, run: Promise<void>, asked = false): Promise<void> {
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

  /** An event of a session this tab runs, for the tabs that follow it. */
  event(sessionId: string, event: RunnerEvent, placement: Placement): void {
    this.#tabs.post({ type: 'event', session: sessionId, event, placement });
  }

  placed(sessionId: string, placement: Placement): void {
    this.#tabs.post({ type: 'placement', session: sessionId, placement });
  }

  #follow(sessionId: string): Followed {
    let followed = this.#followed.get(sessionId);
    if (followed) return followed;
    followed = { placement: HERE_IN_OTHER_TAB, run: undefined, freed: this.#tabs.whenFree(sessionId) };
    this.#followed.set(sessionId, followed);
    this.opts.onPlacement(sessionId, followed.placement);
    const tookOver = async (): Promise<void> => {
      this.#followed.get(sessionId)?.run?.end();
      this.#followed.delete(sessionId);
      await this.opts.tookOver(sessionId);
    };
    followed.freed.then(tookOver).catch((err: unknown) => this.#failed(sessionId, `This tab could not take the session over from the tab that ran it (${messageOf(err)}); reload the page.`));
    return followed;
  }

  #heard(m: TabMessage): void {
    const id = m.session;
    const mine = this.#tabs.owns(id);
    switch (m.type) {
      case 'hello': {
        if (!this.opts.has(id)) return;
        this.placed(id, this.opts.placement(id));
        const runs = this.#runs.get(id);
        if (runs) this.#tabs.post({ type: 'run', session: id, text: runs.text });
        return;
      }
      case 'send':
        if (mine) this.#turn = this.#turn.then(() => this.#runAsked(m));
        return;
      case 'stop':
      case 'release':
        if (mine) void (m.type === 'stop' ? this.opts.stop(id) : this.opts.release(id)).catch((err: unknown) => this.#failed(id, messageOf(err)));
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

  /**
   * Runs a message another tab saved and sent here, once the run going on (a move's continuation, or a message sent
   * here at the same moment) has ended, and answers that tab.
   */
  async #runAsked(m: Extract<TabMessage, { type: 'send' }>): Promise<void> {
    let error: SerializedError | undefined;
    try {
      await this.opts.settled(m.session);
      await this.opts.run(m.session, m.text);
    } catch (err) {
      error = (err instanceof FerryError ? err : new FerryError('runtime/failed', messageOf(err))).toJSON();
    }
    this.#tabs.post({ type: 'done', session: m.session, request: m.request, ...(error ? { error } : {}) });
  }

  #failed(sessionId: string, message: string): void {
    this.opts.onEvent(sessionId, { type: 'error', code: 'app/other-tab', message }, this.opts.placement(sessionId));
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
