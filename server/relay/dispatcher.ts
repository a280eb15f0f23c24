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
 * Spaces (DESIGN §7): a device node (a browser offering itself) belongs to one space and only ever gets runs that
 * name its space; cloud workers get any run whose placement allows the cloud. A run pinned to one node fails with
 * relay/node-left when that node goes — its caller (the context-parallel scheduler, a device handing a session
 * to another) decides where it goes next; an unpinned run moves on to another node it may use.
 *
 * Keys (DESIGN §9): the relay never holds a session key. A run arrives with its key sealed to each worker that may
 * run it (by the public key each announced when it attached); the dispatcher hands a worker only the key sealed to
 * it, and moves a run only to another worker its key was sealed to (the same worker reconnecting, with the same key
 * pair, counts). The write token and the sealed bytes live in memory while the run lasts, never on disk. Every event
 * a worker reports must be sealed with the session key, or it is dropped: the run log holds no plaintext.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import { SPACE_LIMITS, checkSealed, fromBase64Url, mayRunOn, type AssignedRun, type RunStatus, type SealedRunEvent, type StartRunRequest, type WorkerList } from '../../src/core/protocol/index.ts';
import { MAX_MESSAGE_BYTES } from '../../src/core/snapshot/index.ts';
import { noWorker } from './errors.ts';
import type { RunLog } from './run-log.ts';
import type { RunDispatch, SealedPlacement, WorkerHandle } from './run-dispatch.ts';
import type { SnapshotRegistry } from './snapshot-registry.ts';

/** Snapshots whose last worker the dispatcher remembers. */
const MAX_REMEMBERED_SNAPSHOTS = 4096;

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

export type { WorkerHandle };

export class Dispatcher implements RunDispatch {
  private readonly workers = new Map<string, Worker>();
  private readonly assignments = new Map<string, Assignment>();
  /** The worker each snapshot's last run went to, newest last: its next run goes there while it has a free slot. */
  private readonly lastWorker = new Map<string, string>();
  private closing = false;
  /** Workers on their way (the embedded one while its model loads): runs wait for them instead of being refused. */
  private expected = 0;
  private arrivals: (() => void)[] = [];

  constructor(
    private readonly runs: RunLog,
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
        for (const [runId, a] of this.assignments) this.fail(runId, a, error);
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

  /**
   * A worker joins; runs waiting for one it may run start on it. Returns its id. A device node (its membership of
   * its space already proven) counts against SPACE_LIMITS: relay/space-full past them.
   */
  attach(handle: WorkerHandle): string {
    if (handle.space !== undefined) {
      const nodes = [...this.workers.values()].filter((w) => w.handle.space !== undefined);
      checkSpaceCaps(handle, {
        here: nodes.filter((w) => w.handle.space === handle.space).length,
        fromAddress: nodes.filter((w) => w.handle.address === handle.address).length,
        all: nodes.length,
      });
    }
    const id = randomBytes(8).toString('hex');
    this.workers.set(id, { id, handle, runs: new Set() });
    this.log.info({ worker: id, embedded: handle.embedded, device: handle.space !== undefined, profile: handle.profile }, 'worker attached');
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
      this.runs.append(runId, { type: 'worker-lost', worker: workerId, reason });
      if (a.request.where?.node !== undefined) {
        // Pinned: it does not move on by itself; whoever pinned it decides (its snapshot holds its last checkpoint).
        this.fail(runId, a, { code: 'relay/node-left', message: `The node running it left (${reason}); its last checkpoint is published — resume it elsewhere.` });
        continue;
      }
      a.checking = true;
      void this.reassign(runId, a);
    }
  }

  /** Workers attached or on their way. */
  get size(): number {
    return this.workers.size + this.expected;
  }

  /** The cloud workers, and the device nodes of `space` when given (never another space's). */
  list(space?: string): WorkerList {
    const visible = [...this.workers.values()].filter((w) => w.handle.space === undefined || w.handle.space === space);
    return {
      workers: visible.map((w) => ({ id: w.id, kind: w.handle.space === undefined ? 'cloud' : 'device', embedded: w.handle.embedded, runs: w.runs.size, profile: w.handle.profile, publicKey: w.handle.publicKey, ...listedPrefixes(w.handle) })),
    };
  }

  /**
   * Throws unless some worker attached now may take a run placed so, with the run's key sealed to it (or one on its
   * way may): relay/no-worker, or relay/unknown-node for a pin to a node that is not (or no longer) there.
   */
  checkPlacement(request: SealedPlacement): void {
    const workers = [...this.workers.values()].map(workerOf);
    if (workers.some((w) => allows(request, w))) return;
    if (request.where?.node === undefined && request.where?.cloud !== false && this.expected > 0) return;
    throw placementError(request, workers);
  }

  /** Starts a created run on the least-loaded worker its placement allows. Throws as checkPlacement does. */
  async start(runId: string, request: StartRunRequest): Promise<void> {
    this.checkPlacement(request);
    const startVersion = (await this.snapshots.get(request.snapshot))?.version ?? 0;
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const a: Assignment = { request, startVersion, worker: undefined, attempt: 0, checking: false, ended, end };
    this.assignments.set(runId, a);
    this.dispatch(runId, a);
  }

  /**
   * May a publish to `snapshot` from attempt `attempt` of run `runId` land? Only while that attempt is the run's
   * current one, on a worker the relay still counts: a worker given up on (its run reassigned, failed or ended)
   * is refused, so its late checkpoint cannot race the attempt that took over.
   */
  mayPublish(runId: string, attempt: number, snapshot: string): boolean {
    const a = this.assignments.get(runId);
    return a !== undefined && a.attempt === attempt && a.worker !== undefined && a.request.snapshot === snapshot;
  }

  /**
   * A sealed event from `workerId` for `runId`; ignored unless the run is assigned to that worker now, dropped unless
   * it is sealed (sealedEvent): the relay keeps no plaintext.
   */
  event(workerId: string, runId: string, event: SealedRunEvent): void {
    if (this.assignments.get(runId)?.worker !== workerId) return;
    const sealed = sealedEvent(event, this.log, workerId, runId);
    if (sealed) this.runs.append(runId, sealed);
  }

  /** A run ended on `workerId`; a failure's code and message go into its log (they carry no session content). */
  finished(workerId: string, runId: string, status: RunStatus, error?: { code: string; message: string }): void {
    const a = this.assignments.get(runId);
    if (a?.worker !== workerId) return;
    this.workers.get(workerId)?.runs.delete(runId);
    if (status === 'failed' && error) this.runs.append(runId, { type: 'error', ...error });
    this.end(runId, a, status, error);
  }

  private end(runId: string, a: Assignment, status: RunStatus, error?: { code: string; message: string }): void {
    this.log.info({ run: runId, status, ...(error ? { code: error.code } : {}) }, 'run ended');
    this.assignments.delete(runId);
    this.runs.finish(runId, status, error);
    a.end();
  }

  /** Ends a run the relay gives up on, with the reason as its last event. */
  private fail(runId: string, a: Assignment, error: { code: string; message: string }): void {
    this.runs.append(runId, { type: 'error', ...error });
    this.end(runId, a, 'failed', error);
  }

  /** Hand back: asks the run's worker to checkpoint, publish and stop; resolves once it has (or after a while). */
  async stop(runId: string): Promise<void> {
    const a = this.assignments.get(runId);
    this.log.info({ run: runId, running: a !== undefined }, 'run stop asked');
    if (!a) return;
    const worker = a.worker === undefined ? undefined : this.workers.get(a.worker);
    if (!worker) {
      // Waiting for a worker: nothing runs, so stopping is ending it; the snapshot holds its last checkpoint.
      this.end(runId, a, 'stopped');
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
    const worker = this.sticky(a.request) ?? this.leastLoaded(a.request);
    if (!worker) return;
    this.lastWorker.delete(a.request.snapshot);
    this.lastWorker.set(a.request.snapshot, worker.id);
    while (this.lastWorker.size > MAX_REMEMBERED_SNAPSHOTS) this.lastWorker.delete(this.lastWorker.keys().next().value!);
    a.worker = worker.id;
    a.attempt += 1;
    worker.runs.add(runId);
    // Only a move is news on the run's stream (a run's first event stays `resumed`, as clients expect).
    if (a.attempt > 1) this.runs.append(runId, { type: 'reassigned', worker: worker.id, name: worker.handle.profile.name, attempt: a.attempt });
    this.log.info({ run: runId, worker: worker.id, attempt: a.attempt }, 'run assigned');
    worker.handle.assign(runId, a.attempt, assignedTo(a.request, worker.handle));
  }

  private async reassign(runId: string, a: Assignment): Promise<void> {
    const version = (await this.snapshots.get(a.request.snapshot).catch(() => undefined))?.version ?? 0;
    // Its input is in a published checkpoint already: continue from there rather than deliver it twice.
    if (version > a.startVersion) a.request = { ...a.request, input: { type: 'resume' } };
    a.checking = false;
    if (this.assignments.get(runId) === a && a.worker === undefined) this.dispatch(runId, a);
  }

  /**
   * The worker the snapshot's last run went to, when this run may go there and a slot is free: it holds the session's
   * KV in a slot, and what a move warmed for this run (host/move-ahead.ts).
   */
  private sticky(request: StartRunRequest): Worker | undefined {
    const id = this.lastWorker.get(request.snapshot);
    const w = id === undefined ? undefined : this.workers.get(id);
    return w && allows(request, workerOf(w)) && w.runs.size < w.handle.profile.slots ? w : undefined;
  }

  private leastLoaded(request: SealedPlacement): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers.values()) {
      if (!allows(request, workerOf(w))) continue;
      const load = w.runs.size / w.handle.profile.slots;
      if (!best || load < best.runs.size / best.handle.profile.slots) best = w;
    }
    return best;
  }
}

/** A worker's keyed prefixes as the worker list carries them: only when it holds some. */
export function listedPrefixes(handle: WorkerHandle): { prefixes?: readonly string[] } {
  const prefixes = handle.prefixes?.() ?? [];
  return prefixes.length > 0 ? { prefixes } : {};
}

/** A worker as placement sees it: its id, its space (a device node's), and what run keys are sealed to for it. */
export interface PlacedWorker {
  id: string;
  space?: string | undefined;
  publicKey: string;
}

const workerOf = (w: Worker): PlacedWorker => ({ id: w.id, space: w.handle.space, publicKey: w.handle.publicKey });

const kindOf = (w: PlacedWorker): { id: string; kind: 'cloud' | 'device'; space?: string } =>
  w.space === undefined ? { id: w.id, kind: 'cloud' } : { id: w.id, kind: 'device', space: w.space };

/** Whether a run may go to `w`: its placement allows it (RunPlacementSchema) and its key was sealed to `w`. */
export function allows(request: SealedPlacement, w: PlacedWorker): boolean {
  return mayRunOn(request.where, kindOf(w)) && Object.hasOwn(request.keys, w.publicKey);
}

/** Why no worker there is (or is coming) may take a run placed so, given the workers there are. */
export function placementError(request: SealedPlacement, workers: readonly PlacedWorker[]): FerryError {
  const { where } = request;
  if (where?.node !== undefined) {
    return new FerryError('relay/unknown-node', `Node ${where.node} is not attached to this relay${where.space ? ' in that space' : ''}; list the workers again and pick one that is there.`);
  }
  if (workers.some((w) => mayRunOn(where, kindOf(w)))) {
    return new FerryError('relay/no-worker', "None of the workers this run's key was sealed to is attached now; list the workers again and start it again.");
  }
  if (where?.space !== undefined && where.cloud === false) {
    return new FerryError('relay/no-worker', 'No device of this space offers itself as a node now: open Ferry on another of your devices and turn on "Offer this device as a node", or allow the cloud.');
  }
  return noWorker();
}

/** What a worker gets of a run: the request with only the key sealed to it (and no read verifier). */
export function assignedTo(request: StartRunRequest, worker: { publicKey: string }): AssignedRun {
  const { keys, readVerifier: _verifier, ...rest } = request;
  return { ...rest, key: keys[worker.publicKey]! };
}

/** A worker's event as the run log may keep it: a sealed container, or nothing (logged and dropped). */
export function sealedEvent(event: SealedRunEvent, log: FastifyBaseLogger, worker: string, run: string): SealedRunEvent | undefined {
  try {
    checkSealed(fromBase64Url(event.box, 'relay/not-sealed'), 'message', MAX_MESSAGE_BYTES);
  } catch (err) {
    log.warn({ worker, run, err }, 'dropped an event that is not sealed');
    return undefined;
  }
  return { type: 'sealed', box: event.box };
}

/**
 * Throws relay/space-full when a proven device node would pass SPACE_LIMITS: nodes of its space, from its address,
 * and on the relay in all (counts of proven nodes attached now; a stranger cannot add to them).
 */
export function checkSpaceCaps(handle: WorkerHandle, counts: { here: number; fromAddress: number; all: number }): void {
  if (counts.here >= SPACE_LIMITS.nodesPerSpace) {
    throw new FerryError('relay/space-full', `This space already has ${SPACE_LIMITS.nodesPerSpace} devices offering themselves as nodes; stop one on another device first.`);
  }
  if (handle.address !== undefined && counts.fromAddress >= SPACE_LIMITS.nodesPerAddress) {
    throw new FerryError('relay/space-full', `${SPACE_LIMITS.nodesPerAddress} devices from your network already offer themselves as nodes on this relay; stop one first.`);
  }
  if (counts.all >= SPACE_LIMITS.deviceNodes) throw new FerryError('relay/space-full', 'This relay serves as many device nodes as it can; try again later.');
}
