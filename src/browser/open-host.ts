/**
 * The session host as the page builds it (loaded on first use, so the runtime, its worker and the engines stay out
 * of the first paint): this device's agent worker with its engine choice, and the host over it.
 */
import type { RunnerEvent } from '../core/host/index.ts';
import type { AutoPlacementContext } from './auto-placement.ts';
import { DeviceWorker } from './device-worker.ts';
import { EngineChoice, type EngineLimits } from './engine-choice.ts';
import type { DownloadProgress } from './llm/model-download.ts';
import type { LocalData } from './local-data.ts';
import { SessionHost, type SessionHostOptions } from './session-host.ts';
import { startSettings } from './start-settings.ts';

export type EngineNews = Extract<RunnerEvent, { type: 'engine-loading' | 'engine-switch' }> | { type: 'engine-unused'; message: string };

export interface HostSetup extends Omit<SessionHostOptions, 'worker'> {
  data: LocalData;
  limits(): EngineLimits;
  onModelProgress?(progress: DownloadProgress): void;
  /** The engine's own news (web-llm loading, a hand-over to the CPU and why), and the GPU model not being used and why. */
  onEngine?(news: EngineNews): void;
  autoPlacement?(): Promise<AutoPlacementContext | undefined>;
}

export function openSessionHost(setup: HostSetup): { host: SessionHost; worker: DeviceWorker } {
  const engines = new EngineChoice({
    ...(setup.onModelProgress ? { onModelProgress: setup.onModelProgress } : {}),
    onUnused: (message) => setup.onEngine?.({ type: 'engine-unused', message }),
  });
  const worker = new DeviceWorker({
    store: setup.data.store,
    storeName: setup.data.storeName,
    engines,
    settings: () => startSettings(setup.limits(), setup.autoPlacement),
    prefixKey: (id) => setup.data.records.prefixKey(id),
    ...(setup.onEngine ? { onEngine: setup.onEngine } : {}),
  });
  return { host: new SessionHost({ ...setup, worker }), worker };
}
