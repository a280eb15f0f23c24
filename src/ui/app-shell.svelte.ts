import { registerSW } from 'virtual:pwa-register';

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

  #applyUpdate: ((reload?: boolean) => Promise<void>) | null = null;

  start(): void {
    addEventListener('online', () => (this.online = true));
    addEventListener('offline', () => (this.online = false));
    if (!('serviceWorker' in navigator)) {
      this.serviceWorkerError = 'This browser has no service workers: Ferry works, but not offline.';
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

  dismissUpdate(): void {
    this.updateReady = false;
  }
}

export const appShell = new AppShell();
