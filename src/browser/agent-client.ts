/**
 * The page's side of the agent worker (workers/agent.worker.ts): an AgentProxy (results unwrapped, pending calls
 * rejected when the worker dies) over comlink, with events fanned out to the page's subscribers.
 */
import { proxy, releaseProxy, wrap, type Remote } from 'comlink';
import { FerryError } from '../core/errors.ts';
import { AgentProxy } from '../core/host/agent-proxy.ts';
import type { RunnerEvent } from '../core/host/session-runner.ts';
import type { AgentWorkerApi } from '../../workers/agent.worker.ts';
import type { BrowserEngineSpec } from './llm/open-engine.ts';

export function spawnAgentWorker(): Worker {
  return new Worker(new URL('../../workers/agent.worker.ts', import.meta.url), { type: 'module' });
}

export class AgentClient extends AgentProxy<BrowserEngineSpec> {
  readonly #remote: Remote<AgentWorkerApi>;
  /** Listeners in this page; the worker holds one proxy that feeds them all (it has no way to drop one). */
  readonly #listeners = new Set<(event: RunnerEvent) => void>();
  #subscribed: Promise<void> | undefined;

  constructor(private readonly worker: Worker = spawnAgentWorker()) {
    const remote = wrap<AgentWorkerApi>(worker);
    super(remote);
    this.#remote = remote;
    worker.addEventListener('error', (e) => this.fail(new FerryError('runtime/worker-died', `The agent worker failed: ${e.message || 'it could not load'}. Reload the page.`)));
  }

  /** Hears every event of every run; the returned call stops it. */
  async subscribe(listener: (event: RunnerEvent) => void): Promise<() => void> {
    this.#listeners.add(listener);
    this.#subscribed ??= this.#remote.subscribe(proxy((event: RunnerEvent) => {
      for (const l of this.#listeners) l(event);
    }));
    await this.#subscribed;
    return () => void this.#listeners.delete(listener);
  }

  /** Caps this device's generations at `fraction` of a CPU, from their next token on. */
  async setCpuShare(fraction: number): Promise<void> {
    await this.#remote.setCpuShare(fraction);
  }

  /** Closes the session and the worker; calls still waiting are rejected. */
  async terminate(): Promise<void> {
    await this.#remote.close().catch(() => undefined);
    this.#remote[releaseProxy]();
    this.worker.terminate();
    this.fail(new FerryError('runtime/worker-closed', 'The agent worker was closed.'));
  }
}
