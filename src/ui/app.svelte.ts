import type { DeletedSession } from '../browser/local-data.ts';
import { LocalData } from '../browser/local-data.ts';
import { checkTitle, type SessionMeta } from '../browser/catalogue.ts';
import { DEFAULT_SETTINGS, placementPrefs, samplingByTemplate, type ModelChoice, type Settings } from '../browser/settings.ts';
import type { TemplateId } from '../browser/templates.ts';
import type { Placement } from '../browser/placement.ts';
import type { SessionHost } from '../browser/session-host.ts';
import type { DownloadProgress } from '../browser/llm/model-download.ts';
import type { RunnerEvent } from '../core/host/index.ts';
import { nodeOffer } from './device-node.svelte.ts';
import { FerryError } from '../core/errors.ts';
import { describeError, type UiError } from './errors.ts';
import { applyTheme } from './theme.ts';
import { formatBytes } from './format.ts';

export interface Toast {
  id: number;
  text: string;
  /** A failure: shown as an alert with its code. */
  error?: UiError;
  action?: { label: string; run: () => void | Promise<void> };
  /** The session a failure belongs to: shown only on that session's screen, until what it was about is dealt with. */
  session?: string;
}

const TOAST_MS = 15_000;

/** An open session screen's ears: its sessions' events and where it runs. */
export interface SessionWatcher {
  event(e: RunnerEvent, placement: Placement): void;
  placement(p: Placement): void;
  /** A run began that this screen did not start (another tab's message, or one this tab runs for another). */
  run(text: string | null): void;
}

/**
 * The UI's shared state: this device's data (the session list, settings, records), the session host (loaded on first
 * use), the settings and the notices. One instance; every change goes through the data or the host (and so the
 * session core), then refreshes what it shows.
 */
class Ui {
  data = $state.raw<LocalData | null>(null);
  sessions = $state.raw<SessionMeta[]>([]);
  settings = $state.raw<Settings>(DEFAULT_SETTINGS);
  /** The app could not open its storage: nothing else works, so the shell says so. */
  fatal = $state.raw<UiError | null>(null);
  loaded = $state(false);
  toasts = $state<Toast[]>([]);
  /** The model sessions run with on this device; null until the user chooses one (Models screen). */
  model = $state.raw<ModelChoice | null>(null);
  /** A model download in progress (choosing one, or fetching it again after the browser evicted it). */
  modelProgress = $state.raw<DownloadProgress | null>(null);
  /** web-llm loading its model onto the GPU (download and compile), while a session starts. */
  gpuLoading = $state.raw<{ progress: number; text: string } | null>(null);
  /** The chosen GPU model is not running: web-llm handed over to wllama, or this GPU cannot run it (until another is chosen). */
  gpuFellBack = $state(false);
  #nextToast = 1;
  #askedToPersist = false;
  #host: Promise<SessionHost> | undefined;
  /** The open session screen's listeners for its agent's events and placement. */
  readonly #watchers = new Map<string, SessionWatcher>();

  async start(): Promise<void> {
    try {
      const data = await LocalData.open();
      data.sessions.onChange = () => void this.refresh();
      this.data = data;
      this.settings = await data.settings.settings();
      this.model = await data.settings.modelChoice();
      applyTheme(this.settings.theme);
      this.sessions = await data.sessions.list();
    } catch (err) {
      this.fatal = describeError(err);
    } finally {
      this.loaded = true;
    }
  }

  get app(): LocalData {
    if (!this.data) throw new FerryError('app/not-ready', 'Ferry is still opening its storage; try again in a moment.');
    return this.data;
  }

  async refresh(): Promise<void> {
    if (!this.data) return;
    try {
      this.sessions = await this.data.sessions.list();
    } catch (err) {
      this.fail(err);
    }
  }

  /** Runs an action; a failure becomes a visible notice instead of an exception. Returns undefined on failure. */
  async attempt<T>(fn: () => Promise<T>, session?: string): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      this.fail(err, session);
      return undefined;
    }
  }

  /** The relay this device uses: Settings' URL, else the site that served the app. */
  relay(): string {
    return (this.settings.relayUrl || globalThis.location.origin).replace(/\/+$/, '');
  }

  /** The session host, loaded on first use: the runtime, its worker and the engines stay out of the first paint. */
  host(): Promise<SessionHost> {
    this.#host ??= import('../browser/open-host.ts').then(({ openSessionHost }) => {
      const { host, worker } = openSessionHost({
        data: this.app,
        relay: () => this.relay(),
        model: () => this.requireModel(),
        limits: () => ({ replyTokens: this.settings.replyTokens, contextSize: this.settings.contextSize, gpuModel: this.settings.gpuModel, ggufOnGpu: this.settings.ggufOnGpu, sampling: samplingByTemplate(this.settings) }),
        onEvent: (id, e, p) => this.#watchers.get(id)?.event(e, p),
        onPlacement: (id, p) => {
          this.#watchers.get(id)?.placement(p);
          void this.refresh();
        },
        onModelProgress: (p) => (this.modelProgress = p.phase === 'done' || p.phase === 'cached' ? null : p),
        onEngine: (e) => {
          if (e.type === 'engine-loading') {
            this.gpuLoading = e.progress < 1 ? { progress: e.progress, text: e.text } : null;
            return;
          }
          this.gpuLoading = null;
          this.gpuFellBack = true;
          this.notify(e.type === 'engine-switch' ? e.change.message : e.message);
        },
        // Settings' privacy, objective and budget decide; this device's space makes its other devices candidates.
        autoPlacement: async () => ({ relay: this.relay(), prefs: placementPrefs(this.settings), ...(await nodeOffer.placementContext()) }),
        onAutoMove: (_id, reason) => this.notify(reason),
        onRun: (id, text) => this.#watchers.get(id)?.run(text),
      });
      nodeOffer.obeyCpuShare((fraction) => worker.setCpuShare(fraction));
      return host;
    });
    this.#host.catch(() => (this.#host = undefined));
    return this.#host;
  }

  /** Whether the session host has been loaded (a session ran since the page opened). */
  get hostLoaded(): boolean {
    return this.#host !== undefined;
  }

  /** Lets an open session screen hear its agent; returns the call that stops it. */
  watch(id: string, watcher: SessionWatcher): () => void {
    this.#watchers.set(id, watcher);
    return () => {
      if (this.#watchers.get(id) === watcher) this.#watchers.delete(id);
    };
  }

  /** The chosen model, or a typed error telling the user to choose one. */
  requireModel(): ModelChoice {
    if (!this.model) throw new FerryError('app/no-model', 'No model is chosen on this device yet. Open Models and choose "Use" on a model (or pick a GGUF file), then try again.');
    return this.model;
  }

  /**
   * How a model is shown: the chosen model's name (a relay's or a picked file's name) when it is that model (named
   * by its SHA-256, the id engines record), else the first 12 digits of a SHA-256, else the id as it is.
   */
  modelLabel(model: string): string {
    if (this.model?.id === model) return this.model.name;
    return /^[0-9a-f]{64}$/.test(model) ? `${model.slice(0, 12)}…` : model;
  }

  async chooseModel(choice: ModelChoice): Promise<void> {
    this.model = await this.app.settings.saveModelChoice(choice);
  }

  /** Creates a session: the agent worker starts the template's agent and tools in the store, then it is catalogued. */
  async create(template: TemplateId, title?: string): Promise<SessionMeta | undefined> {
    const meta = await this.attempt(async () => {
      const model = this.requireModel();
      if (title !== undefined) checkTitle(title);
      const { sessionId, agent } = await (await this.host()).create(template, model);
      return this.app.sessions.register(sessionId, template, agent, title);
    });
    if (meta) {
      await this.refresh();
      void this.#keepStorage();
    }
    return meta;
  }

  async rename(id: string, title: string): Promise<boolean> {
    const ok = await this.attempt(() => this.app.sessions.rename(id, title));
    await this.refresh();
    return ok !== undefined;
  }

  async remove(id: string): Promise<void> {
    // A run of it elsewhere stops first, so none of its checkpoints lands here after the delete.
    const released = !this.hostLoaded || (await this.attempt(async () => {
      await (await this.host()).release(id);
      return true;
    }));
    if (!released) return;
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
      void this.#keepStorage();
    }
    return meta;
  }

  /**
   * Once there is a session to keep: asks the browser, once per visit, to keep this site's data (not cleared under
   * storage pressure), and warns while its storage is nearly full — a step that cannot be saved stops the session.
   */
  async #keepStorage(): Promise<void> {
    const { askToPersist, nearlyFull, storageUse } = await import('../browser/storage-use.ts');
    if (!this.#askedToPersist) {
      this.#askedToPersist = true;
      await askToPersist();
    }
    const use = await storageUse();
    if (use && nearlyFull(use)) {
      this.notify(`Ferry's storage in this browser is nearly full (${formatBytes(use.usedBytes)} of ${formatBytes(use.quotaBytes)}). Export or delete sessions you no longer need, or remove downloaded models, before it runs out: a step that cannot be saved stops its session.`);
    }
  }

  async saveSettings(next: Settings): Promise<boolean> {
    const saved = await this.attempt(() => this.app.settings.saveSettings(next));
    if (!saved) return false;
    this.settings = saved;
    applyTheme(saved.theme);
    this.notify('Settings saved.');
    return true;
  }

  /** The answer to "Where may your sessions run?", asked once with the first session: kept in Settings. */
  async answerPrivacy(privacy: Settings['privacy']): Promise<boolean> {
    const saved = await this.attempt(() => this.app.settings.saveSettings({ ...this.settings, privacy, privacyAsked: true }));
    if (saved) this.settings = saved;
    return saved !== undefined;
  }

  notify(text: string, action?: Toast['action']): void {
    this.push({ id: this.#nextToast++, text, ...(action ? { action } : {}) });
  }

  fail(err: unknown, session?: string): void {
    const error = describeError(err);
    this.push({ id: this.#nextToast++, text: error.message, error, ...(session ? { session } : {}) });
  }

  /** A session's failures go once what they were about is dealt with (a new message, the unsent one discarded). */
  clearErrors(session: string): void {
    this.toasts = this.toasts.filter((t) => !(t.error && t.session === session));
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
