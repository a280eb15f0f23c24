/**
 * Edge drafts, cloud verifies (src/core/protocol/verify.ts): a device's speculative sessions, each holding its context
 * in a slot of the relay's own engine. Rounds of all sessions go through one VerifyBatcher, so those that arrive
 * together are verified in one pass. A malformed message closes the socket (1008); a session's own failure is
 * answered on that session and leaves the others alone.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { engineVerifier, type DraftVerifier } from '../../src/core/llm/speculative.ts';
import { DeviceToVerifierSchema, VERIFY_LIMITS, parseWire, verifyPath, type DeviceToVerifier, type VerifierToDevice } from '../../src/core/protocol/index.ts';
import { VerifyBatcher, type VerifyBatchOptions } from '../llm/verify-batch.ts';

export interface VerifyRoutesOptions {
  /** The engine that verifies (the relay's own, once loaded); undefined when the relay serves no model. */
  readonly engine: (() => Promise<Engine>) | undefined;
  readonly batch?: VerifyBatchOptions;
}

interface Session {
  readonly verifier: DraftVerifier;
  readonly slot: string;
  round: number;
  busy: boolean;
}

/** Needs @fastify/websocket registered on the app (app.ts does). */
export async function verifyRoutes(app: FastifyInstance, opts: VerifyRoutesOptions): Promise<void> {
  let batcher: Promise<VerifyBatcher> | undefined;
  const verifierEngine = (): Promise<VerifyBatcher> => {
    if (!opts.engine) return Promise.reject(new FerryError('verify/no-engine', 'This relay serves no model, so it cannot verify drafts: start it with a model (ferry start --model …).'));
    batcher ??= opts.engine().then((engine) => new VerifyBatcher(engine, opts.batch));
    return batcher;
  };
  let sockets = 0;
  app.get(verifyPath, { websocket: true }, (socket) => connection(socket, verifierEngine, ++sockets));
}

function connection(socket: WebSocket, batcher: () => Promise<VerifyBatcher>, serial: number): void {
  const sessions = new Map<string, Session>();
  let closed = false;
  const send = (m: VerifierToDevice): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
  };
  const fail = (session: string, cause: unknown): void => {
    const error = isFerryError(cause) ? cause : new FerryError('llm/generate-failed', `Verification failed: ${(cause as Error).message}`);
    send({ type: 'error', session, error: { code: error.code, message: error.message } });
  };
  const release = (name: string): void => {
    const session = sessions.get(name);
    sessions.delete(name);
    if (session) void batcher().then((b) => b.engine.releaseSlot?.(session.slot)).catch(() => undefined);
  };

  socket.on('message', (data) => {
    let message: DeviceToVerifier;
    try {
      message = parseWire(DeviceToVerifierSchema, JSON.parse(String(data)), 'A verify message', 'verify/bad-message');
    } catch (cause) {
      const error = isFerryError(cause) ? cause : new FerryError('verify/bad-message', 'Verify messages are JSON text.');
      send({ type: 'error', error: { code: error.code, message: error.message } });
      socket.close(1008, 'malformed message');
      return;
    }
    void handle(message).catch((cause: unknown) => fail(message.session, cause));
  });
  socket.on('close', () => {
    closed = true;
    for (const name of [...sessions.keys()]) release(name);
  });

  async function handle(m: DeviceToVerifier): Promise<void> {
    if (m.type === 'close') return release(m.session);
    if (m.type === 'open') {
      if (sessions.has(m.session)) release(m.session);
      if (sessions.size >= VERIFY_LIMITS.maxSessions) {
        throw new FerryError('verify/too-many-sessions', `A socket may hold ${VERIFY_LIMITS.maxSessions} speculative sessions at once; close one first.`);
      }
      const { engine } = await batcher();
      if (m.model !== undefined && m.model !== engine.info.model) {
        throw new FerryError('api/unknown-model', `The drafts are for model ${m.model}; this relay verifies with ${engine.info.model}.`);
      }
      if (m.prompt.length >= engine.info.contextSize) {
        throw new FerryError('llm/context-overflow', `The prompt has ${m.prompt.length} tokens; this engine's context holds ${engine.info.contextSize}.`);
      }
      if (closed) return;
      const slot = `verify-${serial}-${m.session}`;
      const verifier = engineVerifier({ info: engine.info, verify: (request) => batcher().then((b) => b.verify(request)) }, m.prompt, slot);
      sessions.set(m.session, { verifier, slot, round: 0, busy: false });
      send({ type: 'opened', session: m.session, model: engine.info.model, tokenizerId: engine.info.tokenizerId });
      return;
    }
    const session = sessions.get(m.session);
    if (!session) throw new FerryError('verify/unknown-session', `No speculative session "${m.session}" is open on this socket: open it first.`);
    if (session.busy || m.round !== session.round + 1) {
      throw new FerryError('verify/out-of-order', `Session "${m.session}" expects round ${session.round + 1}${session.busy ? ' once the one in flight is answered' : ''}, got ${m.round}.`);
    }
    session.busy = true;
    try {
      const verdict = await session.verifier.verify(m.draft);
      session.round = m.round;
      send({ type: 'verdict', session: m.session, round: m.round, ...verdict });
    } finally {
      session.busy = false;
    }
  }
}
