/**
 * A session run in this thread by its AgentRuntime: what the agent worker runs on the device, and what a node runs
 * for the relay (RunHost). Its checkpoints are written by the runtime itself into the store it was opened on, so
 * every `checkpoint` event it passes on is already there. The listener may return a promise: the run waits for it
 * before the next step (a node publishes each checkpoint before going on).
 */
import { isFerryError } from '../errors.ts';
import type { RunInput, StreamingGeneration } from '../runtime/loop.ts';
import type { AgentRuntime } from '../runtime/runtime.ts';
import type { RunnerEvent, SessionRunner } from './session-runner.ts';

export class RuntimeRunner implements SessionRunner {
  #controller: AbortController | undefined;
  #run: Promise<void> | undefined;

  constructor(
    readonly runtime: AgentRuntime,
    private readonly onEvent: (event: RunnerEvent) => void | Promise<void>,
  ) {}

  get sessionId(): string {
    return this.runtime.session.id;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  /** Runs `input` to the next pause; a run already going on is refused by the runtime (`runtime/busy`). */
  send(input: RunInput): Promise<void> {
    const controller = new AbortController();
    const run = (async () => {
      for await (const event of this.runtime.run(input, controller.signal)) await this.onEvent(event);
    })();
    this.#controller = controller;
    const tracked = run.finally(() => {
      if (this.#run === tracked) {
        this.#run = undefined;
        this.#controller = undefined;
      }
    });
    this.#run = tracked;
    return tracked;
  }

  /** Follows the store (where the session ran meanwhile) and continues a cut step; a failure there streams as an error. */
  async resume(): Promise<void> {
    await this.runtime.reload();
    if (this.runtime.loopState.status !== 'running') return;
    this.send({ type: 'resume' }).catch((err: unknown) => void this.onEvent(asError(err)));
  }

  async generating(): Promise<StreamingGeneration | undefined> {
    return this.running ? this.runtime.generating : undefined;
  }

  /** A generation in flight ends "cancelled"; the step completes and is checkpointed, then the run pauses. */
  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.settled();
  }

  async settled(): Promise<void> {
    await this.#run?.catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

function asError(err: unknown): RunnerEvent {
  return { type: 'error', code: isFerryError(err) ? err.code : 'runtime/failed', message: err instanceof Error ? err.message : String(err) };
}
