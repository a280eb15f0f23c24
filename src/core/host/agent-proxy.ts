/**
 * The caller's side of an AgentApi across a worker boundary (a Web Worker in the page, a worker thread in Node):
 * results unwrapped into values or FerryErrors, and every call still waiting rejected once the other side is
 * gone (comlink alone would leave it hanging). The adapters add only their transport: how the worker starts,
 * how its death is noticed, how events are subscribed and how it is closed.
 */
import type { FerryError, SerializedError } from '../errors.ts';
import { unwrap, type AgentApi, type AgentStatus, type StartOptions } from './agent-api.ts';
import type { RunInput } from '../runtime/loop.ts';

type Result<T> = { ok: T } | { error: SerializedError };

/** What the proxy calls: the AgentApi's request methods as the far side answers them (always a promise). */
export type AgentRemote<EngineSpec> = {
  [K in 'start' | 'send' | 'reload' | 'status']: AgentApi<EngineSpec>[K];
} & { cancel(): Promise<void> };

export class AgentProxy<EngineSpec> {
  readonly #pending = new Set<(err: FerryError) => void>();
  #dead: FerryError | undefined;

  constructor(private readonly remote: AgentRemote<EngineSpec>) {}

  start(options: StartOptions<EngineSpec>): Promise<AgentStatus> {
    return this.#call(() => this.remote.start(options));
  }

  send(input: RunInput): Promise<AgentStatus> {
    return this.#call(() => this.remote.send(input));
  }

  /** Stops the current run after its current step; says nothing about whether one was running. */
  cancel(): Promise<void> {
    return this.remote.cancel();
  }

  /** The runtime follows the store: restored to the session's head there, if it moved. */
  reload(): Promise<AgentStatus> {
    return this.#call(() => this.remote.reload());
  }

  status(): Promise<AgentStatus> {
    return this.#call(() => this.remote.status());
  }

  /** True once the far side is gone. */
  protected get dead(): boolean {
    return this.#dead !== undefined;
  }

  /** The far side is gone: every call waiting, and every later one, rejects with `err`. */
  protected fail(err: FerryError): void {
    if (this.#dead) return;
    this.#dead = err;
    for (const reject of this.#pending) reject(err);
    this.#pending.clear();
  }

  #call<T>(run: () => Promise<Result<T>>): Promise<T> {
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
}
