/**
 * Run records and their event logs, as the relay's API and dispatchers use them. Two implementations: SQLite in
 * the data folder (run-registry.ts, one process) and Postgres for replicas (pg-run-log.ts), whose answers come
 * later — hence `Awaitable`. The log holds what the relay may hold: its workers' events sealed with the session key
 * (it cannot read them) and its own metadata events; it stores, numbers and forwards them. A run's record keeps the
 * hash of its read capability, which following its events takes.
 */
import type { RunMessage, RunRecord, RunStatus } from '../../src/core/protocol/index.ts';

export type Awaitable<T> = T | Promise<T>;

/** What a follower receives: each message once, in seq order, then 'end' once the run has ended. */
export type RunListener = (message: RunMessage | 'end') => void;

/** What the run log holds: a worker's sealed event, or the relay's own metadata. */
export type LoggedEvent = RunMessage['event'];

export interface RunLog {
  /** A new run of `snapshot`, readable with the capability whose SHA-256 is `readVerifier` (base64url). */
  create(snapshot: string, readVerifier: string): Awaitable<RunRecord>;
  get(id: string): Awaitable<RunRecord | undefined>;
  /** Whether `token` is the read capability of run `id` (constant time). */
  mayRead(id: string, token: string): Awaitable<boolean>;
  /** Appends one event (numbered in order of appends per run); followers get it once it is durable. */
  append(id: string, event: LoggedEvent): unknown;
  /** Ends the run with `status` after every event appended before. */
  finish(id: string, status: RunStatus, error?: { code: string; message: string }): Awaitable<void>;
  /** Events from `from` on, oldest first. */
  events(id: string, from: number): Awaitable<RunMessage[]>;
  /** Replays events from `from`, then follows live ones; returns how to stop following. */
  follow(id: string, from: number, listener: RunListener): () => void;
  close(): Awaitable<void>;
}

export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set<RunStatus>(['idle', 'done', 'stopped', 'failed', 'interrupted']);
