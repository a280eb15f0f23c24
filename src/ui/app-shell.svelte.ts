import { registerSW } from 'virtual:pwa-register';
import { insecurePageReason } from '../browser/secure-context.ts';

/** Chromium's BeforeInstallPromptEvent (not in the DOM typings). */
interface InstallPromptEvent extends Event {
  prompt(): Promise<void>;
  readonly userChoice: Promise<{ outcome: 'accepted' | 'dismissed' }>;
}

/**
 * The shell's own state: connectivity and the service worker's lifecycle. Reactive (Svelte runes), one instance.
 */
class AppShell {
  online = $state(typeof navigator === 'undefined' ? true : navigator.onLine);
  /** The app shell is cached: reloading offline works. */
  offlineReady = $state(false);
  /** A new version is installed and waits for the user's go-ahead. */
  updateReady = $state(false);
  /** Why the service worker could not be registered, if it could not. */
  serviceWorkerError = $state<string | null>(null);
  /** The browser offered to install Ferry (beforeinstallprompt) and it is not installed yet. */
  installable = $state(false);
  #installPrompt: InstallPromptEvent | null = null;

  #applyUpdate: ((reload?: boolean) => Promise<void>) | null = null;

  start(): void {
    addEventListener('online', () => (this.online = true));
    addEventListener('offline', () => (this.online = false));
    addEventListener('beforeinstallprompt', (event) => {
      // Keep the browser's own mini-infobar back: Ferry shows an Install button instead.
      event.preventDefault();
      this.#installPrompt = event as InstallPromptEvent;
      this.installable = true;
    });
    addEventListener('appinstalled', () => {
      this.#installPrompt = null;
      this.installable = false;
    });
    if (!('serviceWorker' in navigator)) {
      this.serviceWorkerError = insecurePageReason('service worker (Ferry works, but not offline)') ?? 'This browser has no service workers: Ferry works, but not offline.';
      return;
    }
    this.#applyUpdate = registerSW({
      immediate: true,
      onOfflineReady: () => (this.offlineReady = true),
      onNeedRefresh: () => (this.updateReady = true),
      onRegisteredSW: (_url, registration) => {
        // Already controlled on a later visit: the shell was cached then.
        if (registration?.active && navigator.serviceWorker.controller) this.offlineReady = true;
      },
      onRegisterError: (error: unknown) => {
        this.serviceWorkerError = `Offline support is unavailable: ${error instanceof Error ? error.message : String(error)}`;
      },
    });
  }

  async update(): Promise<void> {
    this.updateReady = false;
    await this.#applyUpdate?.(true);
  }

  /** Shows the browser's install dialog; true when the user accepted. */
  async install(): Promise<boolean> {
    const prompt = this.#installPrompt;
    if (!prompt) return false;
    this.#installPrompt = null;
    this.installable = false;
    await prompt.prompt();
    return (await prompt.userChoice).outcome === 'accepted';
  }

  dismissUpdate(): void {
    this.updateReady = false;
  }
}

export const appShell = new AppShell();
