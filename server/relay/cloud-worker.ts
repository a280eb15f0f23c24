/**
 * The relay's embedded cloud worker: resumes a published snapshot with the session key the user handed it for
 * this run, runs the agent (AgentRuntime: checkpoint after every step), publishes every checkpoint back to the
 * same snapshot so the device can follow and take it back, and streams every event into the run's log. Stop:
 * the generation in flight is cancelled, the step completes and is checkpointed, published, and the run ends.
 * The key and write token live only in this run's memory.
 */
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { RelayHttp, fetchSnapshot, publishSession, type StartRunRequest } from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import type { ComponentLibrary } from './component-library.ts';
import type { RunEvent, RunRegistry } from './run-registry.ts';

export interface WorkerOptions {
  engine: Engine;
  components: ComponentLibrary;
  runs: RunRegistry;
  /** How the worker reaches the relay's API (its own loopback address once listening). */
  relayUrl: () => string;
}

export class EmbeddedWorker {
  private readonly active = new Map<string, { abort: AbortController; done: Promise<void> }>();

  constructor(private readonly opts: WorkerOptions) {}

  /** Starts the run in the background; its record and events say how it goes. */
  start(runId: string, request: StartRunRequest, key: Uint8Array): void {
    const abort = new AbortController();
    const done = this.run(runId, request, key, abort.signal).finally(() => this.active.delete(runId));
    this.active.set(runId, { abort, done });
  }

  /** Asks a run to hand back: it checkpoints and publishes its current step, then ends as "stopped". */
  async stop(runId: string): Promise<boolean> {
    const run = this.active.get(runId);
    if (!run) return false;
    run.abort.abort();
    await run.done;
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.active.keys()].map((id) => this.stop(id)));
  }

  private async run(runId: string, request: StartRunRequest, key: Uint8Array, signal: AbortSignal): Promise<void> {
    const { runs } = this.opts;
    const emit = (event: RunEvent): void => void runs.append(runId, event);
    let runtime: AgentRuntime | undefined;
    try {
      const relay = new RelayHttp({ baseUrl: this.opts.relayUrl() });
      const store = createMemoryStore();
      const fetched = await fetchSnapshot(relay, request.snapshot, key, store);
      emit({ type: 'resumed', session: fetched.sessionId, version: fetched.snapshot.version, objects: fetched.sync.objects });
      // The session's own sampling settings (as its head checkpoint recorded them), so the continuation is the one
      // the device would have generated.
      const session = await Session.open(store, fetched.sessionId);
      const recorded = (await session.checkpoint(await session.head())).llm.sampling;
      const sampling = { maxTokens: recorded.maxTokens, temperature: recorded.temperature, seed: recorded.seed, topK: recorded.topK, topP: recorded.topP };
      runtime = await AgentRuntime.open(store, { engine: this.opts.engine, load: (id) => this.opts.components.load(id), sampling }, fetched.sessionId);
      let published = { snapshotId: request.snapshot, writeToken: request.writeToken, key };
      const publish = async (): Promise<void> => {
        const result = await publishSession(store, fetched.sessionId, relay, published);
        published = { snapshotId: result.snapshot.id, writeToken: result.writeToken, key };
        if (!result.unchanged) emit({ type: 'published', version: result.snapshot.version, objects: result.sync.objects, bytes: result.sync.totalBytes });
      };
      const input = request.input.type === 'user' ? { type: 'user' as const, text: request.input.text } : request.input.type === 'start' ? { type: 'start' as const, task: request.input.task } : { type: 'resume' as const };
      for await (const event of runtime.run(input, signal)) {
        emit(event as unknown as RunEvent);
        if (event.type === 'checkpoint' || event.type === 'step-failed') await publish();
      }
      const state = runtime.loopState;
      runs.finish(runId, signal.aborted ? 'stopped' : state.status === 'done' ? 'done' : 'idle');
    } catch (err) {
      const error = isFerryError(err) ? { code: err.code, message: err.message } : { code: 'relay/worker-failed', message: err instanceof Error ? err.message : String(err) };
      emit({ type: 'error', ...error });
      runs.finish(runId, 'failed', error);
    } finally {
      await runtime?.dispose().catch(() => undefined);
    }
  }
}

export const noWorker = (): FerryError =>
  new FerryError('relay/no-worker', 'This relay runs no cloud worker: start it with --model (and --components) to resume sessions here.');
