import type { Session } from '../core/session/index.ts';
import type { ObjectId } from '../core/store/index.ts';
import type { SessionMeta, SessionTree, TranscriptStep } from '../browser/app-state.ts';
import { ui } from './app.svelte.ts';
import { describeError, type UiError } from './errors.ts';

/** One open session: its transcript on the current branch, its checkpoint tree, and the operations on it. */
export class OpenSession {
  meta = $state.raw<SessionMeta | null>(null);
  steps = $state.raw<TranscriptStep[]>([]);
  tree = $state.raw<SessionTree | null>(null);
  branch = $state('');
  loadError = $state.raw<UiError | null>(null);
  loading = $state(true);
  busy = $state(false);
  #session: Session | null = null;

  constructor(readonly id: string) {}

  async load(): Promise<void> {
    this.loading = true;
    try {
      const app = ui.app;
      const [meta, session] = await Promise.all([app.get(this.id), app.openSession(this.id)]);
      this.#session = session;
      this.meta = meta;
      this.branch = session.branch;
      this.steps = await app.transcript(session);
      this.loadError = null;
    } catch (err) {
      this.loadError = describeError(err);
    } finally {
      this.loading = false;
    }
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

  /** Runs a change, then reloads the transcript, the tree (if shown) and the list entry. */
  private async change(fn: (s: Session) => Promise<unknown>, done?: string): Promise<boolean> {
    if (!this.#session || this.busy) return false;
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

  private async reload(): Promise<void> {
    const s = this.#session!;
    this.branch = s.branch;
    await ui.attempt(async () => {
      this.steps = await ui.app.transcript(s);
      this.meta = await ui.app.get(s.id);
      if (this.tree) this.tree = await ui.app.tree(s);
    });
    void ui.refresh();
  }

  send(text: string): Promise<boolean> {
    return this.change((s) => ui.app.sendMessage(s, text));
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
}
