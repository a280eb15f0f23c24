/**
 * The third way to run a step (DESIGN §9): the session runs where it is, on this worker's engine, but each
 * generation is speculative — this engine drafts, a relay's worker verifies the drafts over /api/v2/verify (ids only
 * on the wire) — so its tokens are the verifier's greedy tokens. Checkpoints are those of any run: a cut generation
 * resumes on any engine of the same model, here, speculative or in the cloud.
 *
 * Speculative decoding is greedy: a sampled session runs plainly on this engine, and says why.
 */
import { FerryError, isFerryError } from '../errors.ts';
import type { Engine } from '../llm/engine.ts';
import { SpeculativeEngine } from '../llm/speculative-engine.ts';
import type { DraftLengthOptions } from '../llm/speculative.ts';
import { VerifyConnection, type VerifySocket, type VerifyTimeout } from '../protocol/verify.ts';
import type { Sampling } from '../runtime/loop.ts';

export interface SpeculativeRunOptions {
  /** The relay's verify socket: ws(s)://host/api/v2/verify. */
  readonly verifyUrl: string;
  /** The model whose greedy tokens the session gets (the verifier's); default this engine's own. */
  readonly model?: string;
  readonly draftLength?: DraftLengthOptions;
  /** The relay's limit on a round's answer (default VERIFY_TIMEOUT): the device gives up on a silent relay after half as long again. */
  readonly timeout?: VerifyTimeout;
}

/** Opens a WebSocket (the platform's). */
export type OpenVerifySocket = (url: string) => VerifySocket;

export interface SpeculativeRun {
  /** The engine the session runs with: speculative, or `draft` itself when the session is sampled. */
  readonly engine: Engine;
  /** Set when the session runs plainly instead, and why (for people). */
  readonly fallback?: string;
  /** Closes the verifier's socket (the draft engine stays the caller's). */
  close(): void;
}

/** The platform's WebSocket, or a typed error. */
export function defaultVerifySocket(): OpenVerifySocket {
  const Ws = (globalThis as { WebSocket?: new (url: string) => VerifySocket }).WebSocket;
  if (!Ws) throw new FerryError('runtime/bad-input', 'This runtime has no WebSocket to reach the verifying worker with; pass one to the agent platform (in Node before 22: the ws package).');
  return (url) => new Ws(url);
}

/** `draft` wrapped to verify on the relay at `options.verifyUrl`, unless `sampling` asks for sampled generations. */
export function speculativeRun(draft: Engine, options: SpeculativeRunOptions, sampling: Partial<Sampling> | undefined, open: OpenVerifySocket): SpeculativeRun {
  if (!/^wss?:\/\/[^/]+/i.test(options.verifyUrl)) {
    throw new FerryError('runtime/bad-input', `speculative.verifyUrl must be the relay's ws(s) verify address, got "${options.verifyUrl}".`);
  }
  if ((sampling?.temperature ?? 0) > 0) {
    return {
      engine: draft,
      fallback: `The session samples (temperature ${sampling!.temperature}), and speculative decoding gives greedy tokens only: it runs on this device alone.`,
      close: () => undefined,
    };
  }
  const target = { model: options.model ?? draft.info.model, tokenizerId: draft.info.tokenizerId };
  let connection: Promise<VerifyConnection> | undefined;
  const connect = (): Promise<VerifyConnection> => {
    connection ??= VerifyConnection.connect(options.verifyUrl, open, options.timeout ? { timeout: options.timeout } : {});
    // A socket that failed to open is not kept: the next generation tries again.
    connection.catch(() => (connection = undefined));
    return connection;
  };
  const engine = new SpeculativeEngine({
    draft,
    target,
    ...(options.draftLength ? { draftLength: options.draftLength } : {}),
    verifiers: async (prompt) => {
      const open = await connect();
      try {
        return await open.session(prompt, { model: target.model });
      } catch (err) {
        // A socket lost (or gone silent) since the last round: one fresh socket, then the error is the caller's. A
        // relay that gave up on the open (verify/timeout) is asked once more on the same socket.
        if (!isFerryError(err, 'verify/connection-lost') && !isFerryError(err, 'verify/timeout')) throw err;
        if (open.lost) connection = undefined;
        return (await connect()).session(prompt, { model: target.model });
      }
    },
  });
  return {
    engine,
    close: () => {
      void connection?.then((c) => c.close(), () => undefined);
      connection = undefined;
    },
  };
}
