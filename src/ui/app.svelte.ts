import { AppState, DEFAULT_SETTINGS, type DeletedSession, type SessionMeta, type Settings, type TemplateId } from '../browser/app-state.ts';
import { describeError, type UiError } from './errors.ts';
import { applyTheme } from './theme.ts';

export interface Toast {
  id: number;
  text: string;
  /** A failure: shown as an alert with its code. */
  error?: UiError;
  action?: { label: string; run: () => void | Promise<void> };
}

const TOAST_MS = 15_000;

/**
 * The UI's shared state: the opened AppState, the session list, the settings and the notices. One instance;
 * every mutation goes through the AppState (and so the session core) and then refreshes what it shows.
 */
class Ui {
  state = $state.raw<AppState | null>(null);
  sessions = $state.raw<SessionMeta[]>([]);
  settings = $state.raw<Settings>(DEFAULT_SETTINGS);
  /** The app could not open its storage: nothing else works, so the shell says so. */
  fatal = $state.raw<UiError | null>(null);
  loaded = $state(false);
  toasts = $state<Toast[]>([]);
  #nextToast = 1;

  async start(): Promise<void> {
    try {
      const state = await AppState.open();
      state.onChange = () => void this.refresh();
      this.state = state;
      this.settings = await state.settings();
      applyTheme(this.settings.theme);
      this.sessions = await state.list();
    } catch (err) {
      this.fatal = describeError(err);
    } finally {
      this.loaded = true;
    }
  }

  get app(): AppState {
    if (!this.state) throw new Error('Ferry is still opening its storage.');
    return this.state;
  }

  async refresh(): Promise<void> {
    if (!this.state) return;
    try {
      this.sessions = await this.state.list();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Runs an action; a failure becomes a visible notice instead of an exception. Returns undefined on failure. */
  async attempt<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.fail(err);
      return undefined;
    }
  }

  async create(template: TemplateId, title?: string): Promise<SessionMeta | undefined> {
    const meta = await this.attempt(() => this.app.create(template, title));
    if (meta) await this.refresh();
    return meta;
  }

  async rename(id: string, title: string): Promise<boolean> {
    const ok = await this.attempt(() => this.app.rename(id, title));
    await this.refresh();
    return ok !== undefined;
  }

  async remove(id: string): Promise<void> {
    const deleted: DeletedSession | undefined = await this.attempt(() => this.app.remove(id));
    await this.refresh();
    if (!deleted) return;
    this.notify(`Deleted "${deleted.meta.title}".`, {
      label: 'Undo',
      run: async () => {
        await this.attempt(() => this.app.undoRemove(deleted));
        await this.refresh();
        this.notify(`Restored "${deleted.meta.title}".`);
      },
    });
  }

  async importFile(file: File): Promise<SessionMeta | undefined> {
    const meta = await this.attempt(async () => this.app.importFile(new Uint8Array(await file.arrayBuffer()), file.name));
    if (meta) {
      await this.refresh();
      this.notify(`Imported "${meta.title}".`);
    }
    return meta;
  }

  async saveSettings(next: Settings): Promise<boolean> {
    const saved = await this.attempt(() => this.app.saveSettings(next));
    if (!saved) return false;
    this.settings = saved;
    applyTheme(saved.theme);
    this.notify('Settings saved.');
    return true;
  }

  notify(text: string, action?: Toast['action']): void {
    this.push({ id: this.#nextToast++, text, ...(action ? { action } : {}) });
  }

  fail(err: unknown): void {
    const error = describeError(err);
    this.push({ id: this.#nextToast++, text: error.message, error });
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  private push(toast: Toast): void {
    // One notice at a time (the newest), and at most two errors: the stack never covers much of the screen.
    const errors = this.toasts.filter((t) => t.error);
    this.toasts = toast.error ? [...errors.slice(-1), toast] : [...errors.slice(-2), toast];
    // Errors stay until dismissed; notices (and their undo) for 15 s.
    if (!toast.error) setTimeout(() => this.dismiss(toast.id), TOAST_MS);
  }
}

export const ui = new Ui();
