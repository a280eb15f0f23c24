/**
 * Starts the agent runtime in a Node worker thread and returns a typed handle (the Node twin of
 * src/browser/agent-client.ts): results unwrapped, and every pending call rejected if the thread exits.
 */
import { proxy, wrap, type Remote } from 'comlink';
import { Worker } from 'node:worker_threads';
import { FerryError, type SerializedError } from '../../src/core/errors.ts';
import { unwrap, type AgentStatus, type StartOptions } from '../../src/core/runtime/agent-api.ts';
import type { RunInput } from '../../src/core/runtime/loop.ts';
import type { RuntimeEvent } from '../../src/core/runtime/runtime.ts';
import type { ObjectId } from '../../src/core/store/index.ts';
import type { AgentThreadApi, NodeEngineSpec } from './agent-thread.ts';
import { nodeEndpoint } from './node-endpoint.ts';

export class AgentThread {
  readonly #worker = new Worker(new URL('./agent-thread-entry.mjs', import.meta.url));
  readonly #remote: Remote<AgentThreadApi> = wrap<AgentThreadApi>(nodeEndpoint(this.#worker));
  readonly #pending = new Set<(err: FerryError) => void>();
  #dead: FerryError | undefined;

  constructor() {
    const fail = (why: string) => {
      if (this.#dead) return;
      this.#dead = new FerryError('runtime/worker-died', `The agent thread stopped (${why}).`);
      for (const reject of this.#pending) reject(this.#dead);
      this.#pending.clear();
    };
    this.#worker.once('exit', (code) => fail(`exit code ${code}`));
    this.#worker.once('error', (err) => fail(err.message));
  }

  start(options: StartOptions<NodeEngineSpec>): Promise<AgentStatus> {
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

  rollback(to: ObjectId): Promise<AgentStatus> {
    return this.#call(() => this.#remote.rollback(to));
  }

  exportSession(): Promise<Uint8Array> {
    return this.#call(() => this.#remote.exportSession());
  }

  subscribe(listener: (event: RuntimeEvent) => void): Promise<void> {
    return this.#remote.subscribe(proxy(listener));
  }

  async terminate(): Promise<void> {
    if (!this.#dead) await this.#remote.close().catch(() => undefined);
    await this.#worker.terminate();
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
}
