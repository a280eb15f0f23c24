/**
 * How a session runs, wherever it runs: in this thread (RuntimeRunner), in the device's agent worker (AgentRunner),
 * or as runs on a relay's node followed from here (RelayRunner). One event vocabulary for all of them, in which
 * `checkpoint` means "this step is in the local store now": a step that ran elsewhere is announced only once its
 * checkpoint has been copied here. A listener never needs to know where the session runs to keep its view right.
 *
 * Every runner shares one contract with the local store: after `stop()` the store holds the session as far as it
 * got (a generation in flight cut and checkpointed), and `resume()` takes the session over from what the store
 * holds. A move is therefore nothing more than the one, then the other (`move`): no export, no second store — with the
 * destination warmed first while a reply still streams (move-ahead.ts), so the stream pauses only for what changed.
 */
import { FerryError, isFerryError, type ErrorCode } from '../errors.ts';
import type { Prompt } from '../llm/engine.ts';
import type { RunInput, StreamingGeneration } from '../runtime/loop.ts';
import { warmAhead } from './move-ahead.ts';
import type { RuntimeEvent } from '../runtime/runtime.ts';

/** What a listener hears of a session's runs, wherever they are. */
export type RunnerEvent =
  | RuntimeEvent
  /** Something the person should know that is not a failure (the node left and the session came back, …). */
  | { type: 'notice'; message: string }
  /** A failure of the run or of following it; the session is safe in its last checkpoint. */
  | { type: 'error'; code: ErrorCode; message: string };

export type RunnerListener = (event: RunnerEvent) => void;

export interface SessionRunner {
  readonly sessionId: string;
  /** Runs `input` (the task, a message, or a resume) where the session is; resolves when that run pauses or ends. */
  send(input: RunInput): Promise<void>;
  /**
   * Takes the session over from what the local store holds (it ran somewhere else until now) and continues a step
   * that was cut short. Resolves once it has been taken over; the continuation goes on (see `settled`).
   */
  resume(): Promise<void>;
  /** Stops the run in flight at a checkpoint; afterwards the local store holds everything the session did. */
  stop(): Promise<void>;
  /** Whether a run is going on. */
  readonly running: boolean;
  /** Resolves when no run is going on. */
  settled(): Promise<void>;
  /** Stops hearing the session (a run elsewhere goes on there); the runner is not used again. */
  close(): Promise<void>;
  /** The generation streaming where the session runs now, if one is (a move warms its destination with its prompt). */
  generating?(): Promise<StreamingGeneration | undefined>;
  /**
   * Makes ready to take the session over soon (move-ahead.ts): what the local store holds goes where it will run, and
   * `prompt` is prefilled there, while the session still streams where it is. Only a cache is warmed.
   */
  warm?(prompt: Prompt): Promise<void>;
}

/**
 * Moves the session from one runner to the other: `from` stops at a checkpoint (the local store then holds it all),
 * `to` takes over from the store and continues what was cut. Returns the runner that holds the session afterwards:
 * `to`, or — when `to` could not take it over — `from`, stopped, with the session intact in the store. A failure of
 * `from` to stop leaves the session where it was; both are reported as `failure` with the cause's message added.
 */
export async function move(from: SessionRunner, to: SessionRunner, failure: { code: ErrorCode; message: string }): Promise<SessionRunner> {
  try {
    await warmAhead(from, to);
    await from.stop();
    await to.resume();
    return to;
  } catch (err) {
    throw withContext(err, failure.code, failure.message);
  }
}

/** `err` as a FerryError that says what failed first (`message`), keeping a FerryError's own code. */
export function withContext(err: unknown, code: ErrorCode, message: string): FerryError {
  if (isFerryError(err)) return new FerryError(err.code, `${message} (${err.message})`, { cause: err });
  return new FerryError(code, `${message} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
}
