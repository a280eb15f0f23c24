import { AppState, DEFAULT_SETTINGS, checkTitle, placementPrefs, type DeletedSession, type ModelChoice, type SessionMeta, type Settings, type TemplateId } from '../browser/app-state.ts';
import type { AgentHost } from '../browser/agent-host.ts';
import type { DownloadProgress } from '../browser/llm/model-download.ts';
import { nodeOffer } from './device-node.svelte.ts';
import type { PlacedEvent, Placement } from '../browser/session-mover.ts';
import { FerryError } from '../core/errors.ts';
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
  /** The model sessions run with on this device; null until the user chooses one (Models screen). */
  model = $state.raw<ModelChoice | null>(null);
  /** A model download in progress (choosing one, or fetching it again after the browser evicted it). */
  modelProgress = $state.raw<DownloadProgress | null>(null);
  /** web-llm loading its model onto the GPU (download and compile), while a session starts. */
  gpuLoading = $state.raw<{ progress: number; text: string } | null>(null);
  /** The chosen GPU model is not running: web-llm handed over to wllama, or this GPU cannot run it (until another is chosen). */
  gpuFellBack = $state(false);
  #nextToast = 1;
  #agent: Promise<AgentHost> | undefined;
  /** The open session screen's listeners for its agent's events and placement. */
  readonly #watchers = new Map<string, { event(e: PlacedEvent): void; placement(p: Placement): void }>();

  async start(): Promise<void> {
    try {
      const state = await AppState.open();
      state.onChange = () => void this.refresh();
      this.state = state;
      this.settings = await state.settings();
      this.model = await state.modelChoice();
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

  /** The agent host, loaded on first use: the runtime, its worker and the engines stay out of the first paint. */
  agent(): Promise<AgentHost> {
    this.#agent ??= import('../browser/agent-host.ts').then(({ AgentHost }) => {
      const relay = () => (this.settings.relayUrl || globalThis.location.origin).replace(/\/+$/, '');
      const host = new AgentHost({
        store: this.app.store,
        relay,
        limits: () => ({ replyTokens: this.settings.replyTokens, contextSize: this.settings.contextSize, gpuModel: this.settings.gpuModel, ggufOnGpu: this.settings.ggufOnGpu }),
        cloudRecord: (id) => this.app.cloudRecord(id),
        saveCloudRecord: (id, record) => this.app.saveCloudRecord(id, record),
        onEvent: (id, e) => this.#watchers.get(id)?.event(e),
        onPlacement: (id, p) => this.#watchers.get(id)?.placement(p),
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
        autoPlacement: async () => ({
          relay: relay(),
          prefs: placementPrefs(this.settings),
          ...(await nodeOffer.placementContext()),
        }),
        onAutoMove: (_id, reason) => this.notify(reason),
      });
      nodeOffer.obeyCpuShare((fraction) => host.setCpuShare(fraction));
      return host;
    });
    this.#agent.catch(() => (this.#agent = undefined));
    return this.#agent;
  }

  /** Whether the agent host has been loaded (a session ran since the page opened). */
  get agentLoaded(): boolean {
    return this.#agent !== undefined;
  }

  /** Lets an open session screen hear its agent; returns the call that stops it. */
  watch(id: string, watcher: { event(e: PlacedEvent): void; placement(p: Placement): void }): () => void {
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

  async chooseModel(choice: ModelChoice): Promise<void> {
    this.model = await this.app.saveModelChoice(choice);
  }

  /** Creates a session: the agent worker starts the template's agent and tools in the store, then it is catalogued. */
  async create(template: TemplateId, title?: string): Promise<SessionMeta | undefined> {
    const meta = await this.attempt(async () => {
      const model = this.requireModel();
      if (title !== undefined) checkTitle(title);
      const { sessionId, agent } = await (await this.agent()).create(template, model);
      return this.app.register(sessionId, template, agent, title);
    });
    if (meta) await this.refresh();
    return meta;
  }

  async rename(id: string, title: string): Promise<boolean> {
    const ok = await this.attempt(() => this.app.rename(id, title));
    await this.refresh();
    return ok !== undefined;
  }

  async remove(id: string): Promise<void> {
    // A run of it in the cloud stops first, so none of its checkpoints lands here after the delete.
    const released = !this.agentLoaded || (await this.attempt(async () => {
      await (await this.agent()).release(id);
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
