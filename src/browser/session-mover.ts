/**
 * Moves a live agent session between this device's agent worker and the relay's cloud worker, and back, without
 * stopping its stream (DESIGN §4 "mid-generation moves", §6 runs):
 *
 * - to the cloud: the local run is cancelled — a generation in flight is cut, and the cut (prompt + the token ids
 *   so far) is checkpointed in the loop state; the session is exported, published (encrypted; only objects the
 *   relay lacks travel) and resumed on the cloud worker with `resume`, which first continues the cut generation
 *   from those ids. The cloud run's events stream back to `onEvent`.
 * - back: the cloud run is stopped (it cuts its own generation the same way, checkpoints and publishes), the
 *   snapshot is fetched, the agent worker reopens it and resumes locally.
 *
 * With greedy decoding and the same model file, the session's token ids are the ones of a run that never moved.
 */
import { FerryError, isFerryError, type ErrorCode } from '../core/errors.ts';
import type { AgentStatus } from '../core/runtime/agent-api.ts';
import type { RunInput } from '../core/runtime/loop.ts';
import type { RuntimeEvent } from '../core/runtime/runtime.ts';
import { exportSession, importSession } from '../core/snapshot/index.ts';
import { createMemoryStore } from '../core/store/index.ts';
import type { AgentClient } from './agent-client.ts';
import type { RelayClient, RunMessage, RunRecord, Shared } from './relay-client.ts';

export type Placement = 'device' | 'moving-to-cloud' | 'cloud' | 'bringing-back';

/** A cloud run's event as the relay streams it (the runtime's events, plus `resumed`, `published`, `error`). */
export type CloudEvent = RunMessage['event'];

export type PlacedEvent = { where: 'device'; event: RuntimeEvent } | { where: 'cloud'; event: CloudEvent };

export interface SessionMoverOptions {
  agent: AgentClient;
  relay: RelayClient;
  /** Starts the agent worker again on a session file, with the components and engine it ran before. */
  reopen(file: Uint8Array): Promise<AgentStatus>;
  /** Every event of the session, wherever it runs. */
  onEvent(event: PlacedEvent): void;
  onPlacement?(placement: Placement): void;
}

export class SessionMover {
  #placement: Placement = 'device';
  /** The local run in flight, if any. */
  #local: Promise<AgentStatus> | undefined;
  #published: Shared | undefined;
  #run: { record: RunRecord; followed: Promise<void> } | undefined;
  #subscribed = false;
  #unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: SessionMoverOptions) {}

  get placement(): Placement {
    return this.#placement;
  }

  /** The snapshot the session was last published to (its share link), once it has moved. */
  get published(): Shared | undefined {
    return this.#published;
  }

  /** Runs `input` where the session is: in the agent worker, or as a new run on the cloud worker. */
  async send(input: RunInput): Promise<void> {
    await this.#subscribe();
    if (this.#placement === 'device') {
      await this.#track(this.opts.agent.send(input));
      return;
    }
    if (this.#placement !== 'cloud' || !this.#published) throw busy(this.#placement);
    await this.#run?.followed.catch(() => undefined);
    this.#follow(await this.opts.relay.resumeOnCloud(this.#published, input));
    await this.#run?.followed;
  }

  /** Resolves when the current run (here or in the cloud) has paused or ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([this.#local, this.#run?.followed]);
  }

  /** Moves the session to the cloud worker, mid-generation if one is running; its stream goes on from there. */
  async moveToCloud(): Promise<RunRecord> {
    if (this.#placement !== 'device') throw busy(this.#placement);
    await this.#subscribe();
    this.#set('moving-to-cloud');
    try {
      await this.opts.agent.cancel();
      // The cut step is checkpointed before the local run resolves.
      await this.#local?.catch(() => undefined);
      const file = await this.opts.agent.exportSession();
      const store = createMemoryStore();
      const sessionId = await importSession(store, file);
      this.#published = await this.opts.relay.publish(store, sessionId, this.#published);
      const record = await this.opts.relay.resumeOnCloud(this.#published, { type: 'resume' });
      this.#follow(record);
      this.#set('cloud');
      return record;
    } catch (err) {
      // Nothing left the device for good: the session is still the agent worker's.
      this.#set('device');
      throw wrap(err, 'relay/move-failed', 'The session could not move to the cloud worker; it stays on this device. Check the connection to the relay and try again.');
    }
  }

  /** Stops the cloud run (its generation is cut and checkpointed), takes the session back and continues it here. */
  async bringBack(): Promise<AgentStatus> {
    if (this.#placement !== 'cloud' || !this.#published || !this.#run) throw busy(this.#placement);
    this.#set('bringing-back');
    try {
      const { record, followed } = this.#run;
      await this.opts.relay.handBack(record.id, this.#published);
      // A run that failed has streamed its error to onEvent; its last published checkpoint is still the session's.
      await followed.catch(() => undefined);
      const store = createMemoryStore();
      const { sessionId } = await this.opts.relay.open({ relay: this.opts.relay.http.baseUrl, snapshotId: this.#published.snapshot.id, key: this.#published.key }, store);
      const status = await this.opts.reopen(await exportSession(store, sessionId));
      this.#run = undefined;
      this.#set('device');
      // A cut generation (or any pending step) continues here.
      if (status.state.status === 'running') void this.#track(this.opts.agent.send({ type: 'resume' })).catch(() => undefined);
      return status;
    } catch (err) {
      this.#set('cloud');
      throw wrap(err, 'relay/bring-back-failed', 'The session could not come back from the cloud worker; it is safe in its last published checkpoint. Try "Bring back" again.');
    }
  }

  async #subscribe(): Promise<void> {
    if (this.#subscribed) return;
    this.#subscribed = true;
    this.#unsubscribe = await this.opts.agent.subscribe((event) => this.opts.onEvent({ where: 'device', event }));
  }

  /** Stops hearing the agent worker (another session takes it over). */
  close(): void {
    this.#unsubscribe?.();
  }

  #track(run: Promise<AgentStatus>): Promise<AgentStatus> {
    this.#local = run;
    return run.finally(() => {
      if (this.#local === run) this.#local = undefined;
    });
  }

  #follow(record: RunRecord): void {
    const followed = this.opts.relay.followRun(record.id, (m) => this.opts.onEvent({ where: 'cloud', event: m.event }));
    this.#run = { record, followed };
  }

  #set(placement: Placement): void {
    this.#placement = placement;
    this.opts.onPlacement?.(placement);
  }
}

function busy(placement: Placement): FerryError {
  const now = { device: 'runs on this device', 'moving-to-cloud': 'is moving to the cloud', cloud: 'runs in the cloud', 'bringing-back': 'is coming back' }[placement];
  return new FerryError('relay/move-busy', `The session ${now}; wait for that to finish, then try again.`);
}

function wrap(err: unknown, code: ErrorCode, message: string): FerryError {
  if (isFerryError(err)) return new FerryError(err.code, `${message} (${err.message})`, { cause: err });
  return new FerryError(code, `${message} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
}
