/**
 * Edge drafts, cloud verifies: the wire between a device that drafts tokens and the worker whose model decides
 * (llm/speculative.ts). Ids only: a session opens with its prompt's ids, then each round sends the drafted ids and
 * gets back how many the worker accepts and its own next id. One WebSocket carries many sessions; the worker
 * verifies the rounds that arrive together in one forward pass.
 */
import * as v from 'valibot';
import { FerryError, errorCodeOf } from '../errors.ts';
import type { DraftVerifier, Verdict } from '../llm/speculative.ts';
import { API_PREFIX } from './wire.ts';
import { parseWire } from './validate.ts';

/** WebSocket. */
export const verifyPath = `${API_PREFIX}/verify`;

export const VERIFY_LIMITS = {
  /** Drafted ids per round. */
  maxDraft: 64,
  /** Prompt ids at open; the worker's context size may be lower (then it answers llm/context-overflow). */
  maxPrompt: 65_536,
  /** Sessions open at once on one socket. */
  maxSessions: 64,
} as const;

/**
 * How long a round may go unanswered. A verify pass evaluates a round's draft and the id kept before it (the first
 * round: the prompt too), so the limit is a flat allowance for the queue — a worker batches many sessions' rounds
 * into one pass — plus a bound per evaluated position: 50 ms is a slow CPU's prefill of a large model, so only a
 * worker that stopped answering meets it. The relay then answers the round with verify/timeout; the device allows
 * half as long again (VerifyConnection), so a relay that is there answers first.
 */
export interface VerifyTimeout {
  readonly baseMs: number;
  readonly perPositionMs: number;
}

export const VERIFY_TIMEOUT: VerifyTimeout = { baseMs: 30_000, perPositionMs: 50 };

/** The limit for a pass over `positions` ids (0: an open). */
export function verifyLimitMs(positions: number, timeout: VerifyTimeout = VERIFY_TIMEOUT): number {
  return timeout.baseMs + positions * timeout.perPositionMs;
}

const TokenId = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0x7fffffff));
const SessionId = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, _ or -'));
const Round = v.pipe(v.number(), v.integer(), v.minValue(1));

export const DeviceToVerifierSchema = v.variant('type', [
  v.strictObject({
    type: v.literal('open'),
    session: SessionId,
    /** The ids to continue (BOS included, as the target's prompt). */
    prompt: v.pipe(v.array(TokenId), v.minLength(1), v.maxLength(VERIFY_LIMITS.maxPrompt)),
    /** The model the drafts were made for (the target's EngineInfo.model); refused when the worker serves another. */
    model: v.optional(v.pipe(v.string(), v.maxLength(200))),
  }),
  v.strictObject({
    type: v.literal('verify'),
    session: SessionId,
    /** 1 for the first round after open, then +1: a reply names it. */
    round: Round,
    draft: v.pipe(v.array(TokenId), v.maxLength(VERIFY_LIMITS.maxDraft)),
  }),
  v.strictObject({ type: v.literal('close'), session: SessionId }),
]);
export type DeviceToVerifier = v.InferOutput<typeof DeviceToVerifierSchema>;

export const VerifierToDeviceSchema = v.variant('type', [
  v.strictObject({ type: v.literal('opened'), session: SessionId, model: v.string(), tokenizerId: v.string() }),
  v.strictObject({
    type: v.literal('verdict'),
    session: SessionId,
    round: Round,
    accepted: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(VERIFY_LIMITS.maxDraft)),
    /** The worker's next id after the accepted ones; null: its model ends the generation there. */
    next: v.nullable(TokenId),
  }),
  v.strictObject({
    type: v.literal('error'),
    /** Absent: the socket's fault (a malformed message); it closes. */
    session: v.optional(SessionId),
    error: v.strictObject({ code: v.pipe(v.string(), v.maxLength(100)), message: v.pipe(v.string(), v.maxLength(2000)) }),
  }),
]);
export type VerifierToDevice = v.InferOutput<typeof VerifierToDeviceSchema>;

/** The part of the Web-standard WebSocket the client uses (the browser's; in Node, the `ws` package's). */
export interface VerifySocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

type Waiter = { resolve(m: VerifierToDevice): void; reject(e: unknown): void };

/**
 * One socket to a worker's verifier, carrying any number of speculative sessions. Every pending call settles: a
 * closed socket rejects them all with verify/connection-lost. A call unanswered for half again the relay's limit
 * means the relay itself went silent (it answers its own verify/timeout first): every call fails with verify/timeout
 * and the socket is closed, so the caller opens a new one.
 */
export class VerifyConnection {
  readonly #socket: VerifySocket;
  readonly #waiting = new Map<string, Waiter>();
  #lost: FerryError | undefined;
  #next = 0;
  readonly #timeout: VerifyTimeout;

  private constructor(socket: VerifySocket, timeout: VerifyTimeout) {
    this.#socket = socket;
    this.#timeout = timeout;
    socket.addEventListener('message', (event) => this.#receive(event.data));
    socket.addEventListener('close', () => this.#fail(new FerryError('verify/connection-lost', 'The connection to the verifying worker closed; open a new one and resume from the tokens decided so far.')));
  }

  /** Opens `url` (ws: or wss:) with `open`, e.g. `(u) => new WebSocket(u)`; `timeout`: the relay's (default VERIFY_TIMEOUT). */
  static async connect(url: string, open: (url: string) => VerifySocket, options: { timeout?: VerifyTimeout } = {}): Promise<VerifyConnection> {
    const socket = open(url);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new FerryError('verify/connection-lost', `Could not open the verifier's socket at ${url}.`)));
      socket.addEventListener('close', () => reject(new FerryError('verify/connection-lost', `The verifier at ${url} closed the socket before it opened.`)));
    });
    return new VerifyConnection(socket, options.timeout ?? VERIFY_TIMEOUT);
  }

  /** Starts a session at `prompt`; the result verifies its drafts round by round. */
  async session(prompt: readonly number[], options: { model?: string } = {}): Promise<RemoteVerifier> {
    const session = `s${++this.#next}`;
    const opened = await this.#call(session, { type: 'open', session, prompt: [...prompt], ...(options.model === undefined ? {} : { model: options.model }) }, 0);
    if (opened.type !== 'opened') throw this.#unexpected(opened);
    return new RemoteVerifier(this, session, prompt.length);
  }

  close(): void {
    this.#socket.close(1000, 'done');
  }

  /** Why the socket is unusable (closed, or the relay silent), once it is: open a new one. */
  get lost(): FerryError | undefined {
    return this.#lost;
  }

  /** @internal One request and its answer, due within the limit for `positions`; a session has at most one in flight. */
  async call(session: string, message: DeviceToVerifier, positions: number, signal?: AbortSignal): Promise<VerifierToDevice> {
    return this.#call(session, message, positions, signal);
  }

  /** @internal */
  send(message: DeviceToVerifier): void {
    if (!this.#lost && this.#socket.readyState === 1) this.#socket.send(JSON.stringify(message));
  }

  #call(session: string, message: DeviceToVerifier, positions: number, signal?: AbortSignal): Promise<VerifierToDevice> {
    if (this.#lost) return Promise.reject(this.#lost);
    if (this.#waiting.has(session)) return Promise.reject(new FerryError('verify/out-of-order', `Session ${session} already has a round in flight.`));
    if (signal?.aborted) return Promise.reject(new FerryError('llm/cancelled', 'The verification was cancelled.'));
    return new Promise((resolve, reject) => {
      // Abort stops the wait; the worker still finishes the round (the next one tells it what was kept).
      const abort = () => {
        this.#waiting.delete(session);
        clearTimeout(timer);
        reject(new FerryError('llm/cancelled', 'The verification was cancelled.'));
      };
      const limitMs = verifyLimitMs(positions, this.#timeout) * 1.5;
      const timer = setTimeout(() => {
        this.#fail(new FerryError('verify/timeout', `The relay did not answer session ${session} within ${Math.round(limitMs / 1000)} s; open a new connection and resume from the tokens decided so far.`));
        this.#socket.close(1000, 'no answer');
      }, limitMs);
      signal?.addEventListener('abort', abort, { once: true });
      const settle = (): void => {
        signal?.removeEventListener('abort', abort);
        clearTimeout(timer);
      };
      this.#waiting.set(session, {
        resolve: (m) => {
          settle();
          resolve(m);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
      this.#socket.send(JSON.stringify(message));
    });
  }

  #receive(data: unknown): void {
    let message: VerifierToDevice;
    try {
      message = parseWire(VerifierToDeviceSchema, JSON.parse(String(data)), 'A verifier message');
    } catch (cause) {
      this.#fail(new FerryError('verify/bad-message', `The verifier sent a malformed message: ${(cause as Error).message}`, { cause }));
      this.#socket.close(1008, 'malformed message');
      return;
    }
    if (message.type === 'error' && message.session === undefined) {
      this.#fail(new FerryError(errorCodeOf(message.error.code), message.error.message));
      return;
    }
    const session = message.session!;
    const waiter = this.#waiting.get(session);
    this.#waiting.delete(session);
    if (message.type === 'error') waiter?.reject(new FerryError(errorCodeOf(message.error.code), message.error.message));
    else waiter?.resolve(message);
  }

  #fail(error: FerryError): void {
    this.#lost ??= error;
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }

  #unexpected(m: VerifierToDevice): FerryError {
    return new FerryError('verify/bad-message', `The verifier answered "${m.type}" where it should not.`);
  }
}

/**
 * One session's drafts, verified by the worker over the connection. A cancelled round leaves the worker's context
 * unknown to this side (the worker may have finished it): close the session and open a new one at the tokens kept.
 */
export class RemoteVerifier implements DraftVerifier {
  #round = 0;

  /** `promptLength`: the first round evaluates the prompt too (its limit counts it). */
  constructor(private readonly connection: VerifyConnection, readonly session: string, private readonly promptLength = 0) {}

  async verify(draft: readonly number[], signal?: AbortSignal): Promise<Verdict> {
    const round = ++this.#round;
    const positions = draft.length + (round === 1 ? this.promptLength : 1);
    const m = await this.connection.call(this.session, { type: 'verify', session: this.session, round, draft: [...draft] }, positions, signal);
    if (m.type !== 'verdict' || m.round !== round || m.accepted > draft.length) {
      throw new FerryError('verify/bad-message', `The verifier's answer does not match round ${round} of session ${this.session}.`);
    }
    return { accepted: m.accepted, next: m.next };
  }

  /** Frees the session's place on the worker. */
  close(): void {
    this.connection.send({ type: 'close', session: this.session });
  }
}
