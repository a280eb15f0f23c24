/**
 * The page's side of the agent worker (workers/agent.worker.ts): a typed comlink proxy whose results are
 * unwrapped into values or FerryErrors, events delivered to subscribers, and every pending call rejected when
 * the worker dies (comlink alone would leave them waiting).
 */
import { proxy, releaseProxy, wrap, type Remote } from 'comlink';
import { FerryError, type SerializedError } from '../core/errors.ts';
import { unwrap, type AgentStatus, type StartOptions } from '../core/runtime/agent-api.ts';
import type { RunInput } from '../core/runtime/loop.ts';
import type { RuntimeEvent } from '../core/runtime/runtime.ts';
import type { ObjectId } from '../core/store/index.ts';
import type { AgentWorkerApi, BrowserEngineSpec } from '../../workers/agent.worker.ts';

export function spawnAgentWorker(): Worker {
  return new Worker(new URL('../../workers/agent.worker.ts', import.meta.url), { type: 'module' });
}

export class AgentClient {
  readonly #remote: Remote<AgentWorkerApi>;
  readonly #pending = new Set<(err: FerryError) => void>();
  /** Listeners in this page; the worker holds one proxy that feeds them all (it has no way to drop one). */
  readonly #listeners = new Set<(event: RuntimeEvent) => void>();
  #subscribed: Promise<void> | undefined;
  #dead: FerryError | undefined;

  constructor(private readonly worker: Worker = spawnAgentWorker()) {
    this.#remote = wrap<AgentWorkerApi>(worker);
    worker.addEventListener('error', (e) => this.#fail(new FerryError('runtime/worker-died', `The agent worker failed: ${e.message || 'it could not load'}. Reload the page.`)));
  }

  start(options: StartOptions<BrowserEngineSpec>): Promise<AgentStatus> {
    return this.#call(() => this.#remote.start(options));
  }

  send(input: RunInput): Promise<AgentStatus> {
    return this.#call(() => this.#remote.send(input));
  }

  cancel(): Promise<void> {
    return this.#remote.cancel();
  }

  fork(name: string, at?: ObjectId): Promise<AgentStatus> {
    return this.#call(() => this.#remote.fork(name, at));
  }

  switchBranch(name: string): Promise<AgentStatus> {
    return this.#call(() => this.#remote.switchBranch(name));
  }

  rollback(to: ObjectId): Promise<AgentStatus> {
    return this.#call(() => this.#remote.rollback(to));
  }

  exportSession(): Promise<Uint8Array> {
    return this.#call(() => this.#remote.exportSession());
  }

  status(): Promise<AgentStatus> {
    return this.#call(() => this.#remote.status());
  }

  /** Hears every event of every run; the returned call stops it. */
  async subscribe(listener: (event: RuntimeEvent) => void): Promise<() => void> {
    this.#listeners.add(listener);
    this.#subscribed ??= this.#remote.subscribe(proxy((event: RuntimeEvent) => {
      for (const l of this.#listeners) l(event);
    }));
    await this.#subscribed;
    return () => void this.#listeners.delete(listener);
  }

  /** Closes the session and the worker; calls still waiting are rejected. */
  async terminate(): Promise<void> {
    await this.#remote.close().catch(() => undefined);
    this.#remote[releaseProxy]();
    this.worker.terminate();
    this.#fail(new FerryError('runtime/worker-closed', 'The agent worker was closed.'));
  }

  #call<T>(run: () => Promise<{ ok: T } | { error: SerializedError }>): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise<T>((resolve, reject) => {
      const fail = (err: FerryError) => reject(err);
      this.#pending.add(fail);
      run().then(
        (result) => {
          this.#pending.delete(fail);
          try {
            resolve(unwrap(result));
          } catch (err) {
            reject(err);
          }
        },
        (err: unknown) => {
          this.#pending.delete(fail);
          reject(err);
        },
      );
    });
  }

  #fail(err: FerryError): void {
    if (this.#dead) return;
    this.#dead = err;
    for (const reject of this.#pending) reject(err);
    this.#pending.clear();
  }
}
