/**
 * The relay's dispatcher: which worker runs which run. Workers (the embedded one, and `ferry worker` processes
 * attached over WebSocket) register with a profile; a new run goes to the least-loaded worker. Every event a
 * worker reports goes into the run's log — only from the worker the run is assigned to now, so a worker that was
 * given up on can never write into a run that moved on.
 *
 * Failover: when a worker is lost (socket closed, heartbeats missed) each of its runs is reassigned to another
 * worker — or waits for the next one to attach. The new worker resumes from the snapshot, which ends at the last
 * checkpoint the run published: every step acknowledged before the failure is kept, and the run's event log (its
 * seq numbers) simply continues. A run that has published since it started is continued with `resume` (its input
 * is already in the session); one that has not is started again with its original input.
 *
 * The relay holds each run's session key and write token in memory while the run lasts, as the worker does: it
 * needs them to hand the run to another worker. They never reach the disk.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { RunStatus, StartRunRequest, WorkerList, WorkerProfile } from '../../src/core/protocol/index.ts';
import { noWorker } from './errors.ts';
import type { RunRegistry } from './run-registry.ts';
import type { SnapshotRegistry } from './snapshot-registry.ts';

/** How the dispatcher reaches one worker. Sends are fire-and-forget: the worker answers through the dispatcher. */
export interface WorkerHandle {
  readonly embedded: boolean;
  readonly profile: WorkerProfile;
  assign(runId: string, attempt: number, request: StartRunRequest): void;
  /** Hand back: checkpoint, publish, finish "stopped". */
  stop(runId: string): void;
  /** The run was given to another worker: drop it without publishing. */
  abandon(runId: string): void;
}

interface Worker {
  id: string;
  handle: WorkerHandle;
  runs: Set<string>;
}

interface Assignment {
  request: StartRunRequest;
  /** The snapshot's version when the run started: a later one means the run has published checkpoints. */
  startVersion: number;
  worker: string | undefined;
  attempt: number;
  /** Between losing its worker and reading the snapshot's version (which decides the input): not dispatchable. */
  checking: boolean;
  ended: Promise<void>;
  end: () => void;
}

/** How long a stop waits for the worker to hand back before answering with the record as it stands. */
const STOP_WAIT_MS = 30_000;

export class Dispatcher {
  private readonly workers = new Map<string, Worker>();
  private readonly assignments = new Map<string, Assignment>();
  private closing = false;
  /** Workers on their way (the embedded one while its model loads): runs wait for them instead of being refused. */
  private expected = 0;
  private arrivals: (() => void)[] = [];

  constructor(
    private readonly runs: RunRegistry,
    private readonly snapshots: SnapshotRegistry,
    private readonly log: FastifyBaseLogger,
  ) {}

  /** A worker is coming (its model is loading): until it attaches or fails, new runs wait for it. */
  expect(): { attached(): void; failed(error: { code: string; message: string }): void } {
    this.expected += 1;
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.expected -= 1;
      if (this.expected === 0) for (const wake of this.arrivals.splice(0)) wake();
      return true;
    };
    return {
      attached: () => void settle(),
      failed: (error) => {
        if (!settle() || this.workers.size > 0 || this.expected > 0) return;
        // Nobody is coming for the runs that waited: they fail with the reason.
        for (const [runId, a] of this.assignments) {
          this.assignments.delete(runId);
          this.runs.append(runId, { type: 'error', ...error });
          this.runs.finish(runId, 'failed', error);
          a.end();
        }
      },
    };
  }

  /** Resolves once no worker is on its way any more (or after `timeoutMs`): a worker list then says what there is. */
  async arrived(timeoutMs: number): Promise<void> {
    if (this.expected === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((resolve) => this.arrivals.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** A worker joins; runs waiting for one start on it. Returns its id. */
  attach(handle: WorkerHandle): string {
    const id = randomBytes(8).toString('hex');
    this.workers.set(id, { id, handle, runs: new Set() });
    this.log.info({ worker: id, embedded: handle.embedded, profile: handle.profile }, 'worker attached');
    for (const [runId, a] of this.assignments) if (a.worker === undefined && !a.checking) this.dispatch(runId, a);
    return id;
  }

  /** A worker is gone: every run it had goes to another worker (or waits for one). */
  detach(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker) return;
    this.workers.delete(workerId);
    // The relay is shutting down: its runs stay "running" in the log and read "interrupted" when it starts again.
    if (this.closing) return;
    this.log.warn({ worker: workerId, reason, runs: worker.runs.size }, 'worker lost');
    for (const runId of worker.runs) {
      const a = this.assignments.get(runId);
      if (!a) continue;
      worker.handle.abandon(runId);
      a.worker = undefined;
      a.checking = true;
      this.runs.append(runId, { type: 'worker-lost', worker: workerId, reason });
      void this.reassign(runId, a);
    }
  }

  /** Workers attached or on their way. */
  get size(): number {
    return this.workers.size + this.expected;
  }

  list(): WorkerList {
    return { workers: [...this.workers.values()].map((w) => ({ id: w.id, embedded: w.handle.embedded, runs: w.runs.size, profile: w.handle.profile })) };
  }

  /** Starts a created run on the least-loaded worker. Throws relay/no-worker when none is attached. */
  async start(runId: string, request: StartRunRequest): Promise<void> {
    if (this.workers.size === 0 && this.expected === 0) throw noWorker();
    const startVersion = (await this.snapshots.get(request.snapshot))?.version ?? 0;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const a: Assignment = { request, startVersion, worker: undefined, attempt: 0, checking: false, ended, end };
    this.assignments.set(runId, a);
    this.dispatch(runId, a);
  }

  /** An event from `workerId` for `runId`; ignored unless the run is assigned to that worker now. */
  event(workerId: string, runId: string, event: { type: string } & Record<string, unknown>): void {
    if (this.assignments.get(runId)?.worker !== workerId) return;
    this.runs.append(runId, event);
  }

  finished(workerId: string, runId: string, status: RunStatus, error?: { code: string; message: string }): void {
    const a = this.assignments.get(runId);
    if (a?.worker !== workerId) return;
    this.assignments.delete(runId);
    this.workers.get(workerId)?.runs.delete(runId);
    this.runs.finish(runId, status, error);
    a.end();
  }

  /** Hand back: asks the run's worker to checkpoint, publish and stop; resolves once it has (or after a while). */
  async stop(runId: string): Promise<void> {
    const a = this.assignments.get(runId);
    if (!a) return;
    const worker = a.worker === undefined ? undefined : this.workers.get(a.worker);
    if (!worker) {
      // Waiting for a worker: nothing runs, so stopping is ending it; the snapshot holds its last checkpoint.
      this.assignments.delete(runId);
      this.runs.finish(runId, 'stopped');
      a.end();
      return;
    }
    worker.handle.stop(runId);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([a.ended, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  /** The relay is closing: workers that go now take their runs with them (see detach). */
  close(): void {
    this.closing = true;
  }

  /** Runs assigned to `workerId` now. */
  runsOf(workerId: string): string[] {
    return [...(this.workers.get(workerId)?.runs ?? [])];
  }

  private dispatch(runId: string, a: Assignment): void {
    const worker = this.leastLoaded();
    if (!worker) return;
    a.worker = worker.id;
    a.attempt += 1;
    worker.runs.add(runId);
    // Only a move is news on the run's stream (a run's first event stays `resumed`, as clients expect).
    if (a.attempt > 1) this.runs.append(runId, { type: 'reassigned', worker: worker.id, name: worker.handle.profile.name, attempt: a.attempt });
    worker.handle.assign(runId, a.attempt, a.request);
  }

  private async reassign(runId: string, a: Assignment): Promise<void> {
    const version = (await this.snapshots.get(a.request.snapshot).catch(() => undefined))?.version ?? 0;
    // Its input is in a published checkpoint already: continue from there rather than deliver it twice.
    if (version > a.startVersion) a.request = { ...a.request, input: { type: 'resume' } };
    a.checking = false;
    if (this.assignments.get(runId) === a && a.worker === undefined) this.dispatch(runId, a);
  }

  private leastLoaded(): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers.values()) {
      const load = w.runs.size / w.handle.profile.slots;
      if (!best || load < best.runs.size / best.handle.profile.slots) best = w;
    }
    return best;
  }
}
