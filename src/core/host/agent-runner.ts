/**
 * A session run by an agent worker on the far side of a worker boundary — the device's agent worker in a page, an
 * agent thread in Node — through its AgentApi. The worker holds one session at a time, opened on the same store the
 * caller holds: before every run the runner `claim`s it (the caller opens the session in the worker, or has the
 * worker follow the store if the session moved on there), so the worker never runs a stale copy. Its events reach
 * the runner through `hear`, from whoever listens to the worker and knows which session it holds.
 */
import type { RunInput, StreamingGeneration } from '../runtime/loop.ts';
import type { AgentStatus } from './agent-api.ts';
import { withContext, type RunnerEvent, type RunnerListener, type SessionRunner } from './session-runner.ts';

/** What the runner asks of the worker (an AgentProxy). */
export interface AgentWorker {
  send(input: RunInput): Promise<AgentStatus>;
  /** Ends this session's run in the worker, if one goes on; resolves once it has ended. */
  cancel(): Promise<void>;
  /** What the worker holds now (whichever session that is). */
  status?(): Promise<AgentStatus>;
}

export interface AgentRunnerOptions {
  sessionId: string;
  worker: AgentWorker;
  /** Makes the worker hold this session as the store has it now; resolves with its status there. */
  claim(): Promise<AgentStatus>;
  onEvent: RunnerListener;
}

export class AgentRunner implements SessionRunner {
  readonly sessionId: string;
  #run: Promise<void> | undefined;
  #closed = false;

  constructor(private readonly opts: AgentRunnerOptions) {
    this.sessionId = opts.sessionId;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  /** One of the worker's events, while it holds this session. */
  hear(event: RunnerEvent): void {
    if (!this.#closed) this.opts.onEvent(event);
  }

  /** Counts as running from the claim on, so no other session takes the worker in between. */
  async send(input: RunInput): Promise<void> {
    await this.#track((async () => {
      await this.opts.claim();
      await this.opts.worker.send(input);
    })());
  }

  /** Answered once taken over: at the end of the claim when nothing was cut, else once the continuation is under way. */
  async resume(): Promise<void> {
    let continuing = false;
    let underWay!: () => void;
    const started = new Promise<void>((resolve) => (underWay = resolve));
    const run = this.#track((async () => {
      const status = await this.opts.claim();
      if (status.state.status !== 'running') return;
      continuing = true;
      underWay();
      await this.opts.worker.send({ type: 'resume' });
    })());
    run.catch((err: unknown) => {
      if (!continuing) return; // the caller hears it
      const e = withContext(err, 'runtime/failed', 'The session could not continue on this device');
      this.hear({ type: 'error', code: e.code, message: e.message });
    });
    await Promise.race([run, started]);
  }

  /**
   * The worker is asked even when this runner knows of no run: whatever of this session goes on there ends, its
   * last checkpoint in the store, before this resolves — a move publishes only after that.
   */
  async stop(): Promise<void> {
    await this.opts.worker.cancel();
    await this.settled();
  }

  async settled(): Promise<void> {
    await this.#run?.catch(() => undefined);
  }

  async generating(): Promise<StreamingGeneration | undefined> {
    if (!this.running || !this.opts.worker.status) return undefined;
    const status = await this.opts.worker.status();
    return status.sessionId === this.sessionId ? status.generating : undefined;
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #track(run: Promise<void>): Promise<void> {
    const tracked = run.finally(() => {
      if (this.#run === tracked) this.#run = undefined;
    });
    this.#run = tracked;
    return tracked;
  }
}
