/**
 * Starts the agent runtime in a Node worker thread and returns a typed handle (the Node twin of
 * src/browser/agent-client.ts; both are an AgentProxy over the thread's AgentApi): every pending call is
 * rejected if the thread exits.
 */
import { proxy, wrap, type Remote } from 'comlink';
import { Worker } from 'node:worker_threads';
import { FerryError } from '../../src/core/errors.ts';
import { AgentProxy } from '../../src/core/host/agent-proxy.ts';
import type { RunnerEvent } from '../../src/core/host/session-runner.ts';
import type { AgentThreadApi, NodeEngineSpec } from './agent-thread.ts';
import { nodeEndpoint } from './node-endpoint.ts';

export class AgentThread extends AgentProxy<NodeEngineSpec> {
  readonly #worker: Worker;
  readonly #remote: Remote<AgentThreadApi>;

  constructor() {
    const worker = new Worker(new URL('./agent-thread-entry.mjs', import.meta.url));
    const remote = wrap<AgentThreadApi>(nodeEndpoint(worker));
    super(remote);
    this.#worker = worker;
    this.#remote = remote;
    const fail = (why: string) => this.fail(new FerryError('runtime/worker-died', `The agent thread stopped (${why}).`));
    worker.once('exit', (code) => fail(`exit code ${code}`));
    worker.once('error', (err) => fail(err.message));
  }

  subscribe(listener: (event: RunnerEvent) => void): Promise<void> {
    return this.#remote.subscribe(proxy(listener));
  }

  async terminate(): Promise<void> {
    if (!this.dead) await this.#remote.close().catch(() => undefined);
    await this.#worker.terminate();
  }
}
