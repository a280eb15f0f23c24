/**
 * Which worker runs which run, as the relay's API sees it. Two implementations: in one process's memory
 * (dispatcher.ts, the embedded relay) and across replicas through Postgres (shared-dispatcher.ts), whose answers
 * may come later — hence `Awaitable`.
 */
import type { AssignedRun, RunStatus, SealedRunEvent, StartRunRequest, WorkerList, WorkerProfile } from '../../src/core/protocol/index.ts';
import type { Awaitable } from './run-log.ts';

/** What decides where a run may go: its placement, and the workers its key was sealed to. */
export type SealedPlacement = Pick<StartRunRequest, 'where' | 'keys'>;

/** How a dispatcher reaches one worker attached to this process. Sends are fire-and-forget: the worker answers through the dispatcher. */
export interface WorkerHandle {
  readonly embedded: boolean;
  /** A device node's space (its id, membership proven); absent for a cloud worker. */
  readonly space?: string;
  /** The client address a device node attached from (device nodes are capped per address). */
  readonly address?: string;
  readonly profile: WorkerProfile;
  /** What run keys are sealed to for this worker. */
  readonly publicKey: string;
  /** The keyed prefixes it holds now (WirePrefixesSchema), as it last said; listed with it. */
  prefixes?(): readonly string[];
  /** `request` carries only the session key sealed to this worker. */
  assign(runId: string, attempt: number, request: AssignedRun): void;
  /** Hand back: checkpoint, publish, finish "stopped". */
  stop(runId: string): void;
  /** The run was given to another worker: drop it without publishing. */
  abandon(runId: string): void;
}

export interface RunDispatch {
  /** This replica's id, where there are replicas. */
  readonly replica?: string;
  /** A worker is coming (its model is loading): until it attaches or fails, new runs wait for it. */
  expect(): { attached(): void; failed(error: { code: string; message: string }): void };
  /** Resolves once no worker is on its way any more (or after `timeoutMs`). */
  arrived(timeoutMs: number): Promise<void>;
  /** A worker joins; returns its id. Throws relay/space-full past SPACE_LIMITS. */
  attach(handle: WorkerHandle): Awaitable<string>;
  /** A worker is gone: every run it had goes to another worker (or waits for one). */
  detach(workerId: string, reason: string): unknown;
  /** The cloud workers, and the device nodes of `space` when given. */
  list(space?: string): Awaitable<WorkerList>;
  /** Throws unless some worker may take a run placed so, its key sealed to it (relay/no-worker, relay/unknown-node). */
  checkPlacement(request: SealedPlacement): Awaitable<void>;
  /** Starts a created run on a worker its placement allows. */
  start(runId: string, request: StartRunRequest): Promise<void>;
  /** May attempt `attempt` of run `runId` still publish to `snapshot`? (The fence against superseded workers.) */
  mayPublish(runId: string, attempt: number, snapshot: string): Awaitable<boolean>;
  /** A sealed event from `workerId` for `runId`; ignored unless the run is that worker's now, dropped unless sealed. */
  event(workerId: string, runId: string, event: SealedRunEvent): void;
  finished(workerId: string, runId: string, status: RunStatus, error?: { code: string; message: string }): void;
  /** Hand back: resolves once the run's worker has checkpointed, published and stopped (or after a while). */
  stop(runId: string): Promise<void>;
  close(): Awaitable<void>;
}
