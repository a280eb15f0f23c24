/**
 * Edge drafts, cloud verifies (src/core/protocol/verify.ts): a device's speculative sessions. A session for the
 * relay's own model (or naming none, while the relay has one) is verified by the relay's engine (llm/verify-sessions.ts);
 * one for a model the relay does not serve, or any when it serves none, goes to an attached worker that verifies
 * that model, over the worker's link (one channel per device socket and worker), where that worker's own batcher
 * verifies it with its other sessions' rounds. The relay checks every message before it forwards it and answers
 * nothing on a worker's behalf but this: a worker that leaves answers each of its sessions' pending rounds with
 * verify/connection-lost, and an open or round unanswered within its limit (VERIFY_TIMEOUT: a worker attached but
 * stuck) is answered with verify/timeout and its session forgotten, a late answer dropped (either way the device
 * resumes from the tokens decided so far, in a new session). A malformed message closes the socket
 * (1008); a session's own failure is answered on that session and leaves the others alone.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { DeviceToVerifierSchema, VERIFY_LIMITS, VERIFY_TIMEOUT, parseWire, verifyLimitMs, verifyPath, type DeviceToVerifier, type VerifierToDevice, type VerifyTimeout } from '../../src/core/protocol/index.ts';
import { VerifyBatcher, type VerifyBatchOptions } from '../llm/verify-batch.ts';
import { VerifySessions } from '../llm/verify-sessions.ts';
import type { VerifyChannel, WorkerEngine } from '../relay/worker-engines.ts';

export interface VerifyRoutesOptions {
  /** The engine that verifies (the relay's own, once loaded); undefined when the relay serves no model. */
  readonly engine: (() => Promise<Engine>) | undefined;
  /** Attached workers that verify: sessions the relay's own engine cannot take go to one serving their model. */
  readonly workers?: { verifier(model: string | undefined): WorkerEngine | undefined };
  readonly batch?: VerifyBatchOptions;
  /** How long an answer may take; read as each open or round is sent (default VERIFY_TIMEOUT). */
  readonly timeout?: VerifyTimeout;
}

/**
 * Where a session lives: the relay's engine (no worker) or a worker's; `waiting` while an answer is due (the round's
 * number), with `timer` to answer it with verify/timeout.
 */
interface Route {
  readonly worker: WorkerEngine | undefined;
  readonly promptLength: number;
  rounds: number;
  waiting: 'open' | number | undefined;
  timer?: ReturnType<typeof setTimeout>;
}

/** Needs @fastify/websocket registered on the app (app.ts does). */
export async function verifyRoutes(app: FastifyInstance, opts: VerifyRoutesOptions): Promise<void> {
  let batcher: Promise<VerifyBatcher> | undefined;
  const own = (): Promise<VerifyBatcher> => {
    if (!opts.engine) return Promise.reject(noEngine(undefined));
    batcher ??= opts.engine().then((engine) => new VerifyBatcher(engine, opts.batch));
    return batcher;
  };
  let sockets = 0;
  app.get(verifyPath, { websocket: true }, (socket) => connection(socket, own, opts, ++sockets));
}

const noEngine = (model: string | undefined): FerryError => new FerryError('verify/no-engine', model === undefined
  ? 'This relay serves no model and no attached worker verifies drafts: start it with a model (ferry start --model …) or attach a worker (ferry worker --relay …).'
  : `This relay serves no model and no attached worker verifies drafts for model ${model}: attach a worker that serves it (ferry worker --relay … --model …).`);

function connection(socket: WebSocket, own: () => Promise<VerifyBatcher>, opts: VerifyRoutesOptions, serial: number): void {
  const routes = new Map<string, Route>();
  /** Sessions whose worker left, with the error their next message gets. */
  const gone = new Map<string, FerryError>();
  const channels = new Map<WorkerEngine, VerifyChannel>();
  const send = (m: VerifierToDevice): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
  };
  const fail = (session: string, cause: unknown): void => {
    const error = isFerryError(cause) ? cause : new FerryError('llm/generate-failed', `Verification failed: ${(cause as Error).message}`);
    send({ type: 'error', session, error: { code: error.code, message: error.message } });
  };
  /** Bounded: a device that never closes what it lost cannot grow it past a socket's sessions. */
  const forget = (session: string, error: FerryError): void => {
    clearTimeout(routes.get(session)?.timer);
    routes.delete(session);
    gone.set(session, error);
    if (gone.size > VERIFY_LIMITS.maxSessions) gone.delete(gone.keys().next().value!);
  };
  /**
   * An answer from where `session` lives to what it waits for; anything else (a late answer from a worker it no
   * longer lives on, or to a round already answered with verify/timeout) is dropped.
   */
  const answer = (from: WorkerEngine | undefined, m: VerifierToDevice): void => {
    const route = m.session === undefined ? undefined : routes.get(m.session);
    if (!route || route.worker !== from) return;
    if (m.type === 'opened' && route.waiting !== 'open') return;
    if (m.type === 'verdict' && route.waiting !== m.round) return;
    // A session that failed to open is not there: it does not count against the limit.
    if (route.waiting === 'open' && m.type === 'error') routes.delete(m.session!);
    clearTimeout(route.timer);
    route.waiting = undefined;
    send(m);
  };
  /** `route` now waits for `waiting`; unanswered within its limit, the session is forgotten (its worker told to close it). */
  const due = (session: string, route: Route, waiting: 'open' | number, positions: number): void => {
    route.waiting = waiting;
    const limitMs = verifyLimitMs(positions, opts.timeout ?? VERIFY_TIMEOUT);
    route.timer = setTimeout(() => {
      if (routes.get(session) !== route || route.waiting !== waiting) return;
      const error = new FerryError('verify/timeout', `The ${route.worker ? 'worker' : 'engine'} verifying this session did not answer ${waiting === 'open' ? 'its open' : `round ${waiting}`} within ${Math.round(limitMs / 1000)} s; open a new session and resume from the tokens decided so far.`);
      forget(session, error);
      forward(route, { type: 'close', session });
      fail(session, error);
    }, limitMs);
  };
  const local = new VerifySessions(own, (m) => answer(undefined, m), `verify-${serial}`);

  const channelTo = (worker: WorkerEngine): VerifyChannel => {
    let channel = channels.get(worker);
    if (!channel) {
      channel = worker.openVerifyChannel({
        answer: (m) => answer(worker, m),
        lost: (reason) => {
          channels.delete(worker);
          const error = new FerryError('verify/connection-lost', `The worker verifying this session left (${reason}); open a new session and resume from the tokens decided so far.`);
          for (const [session, route] of [...routes]) {
            if (route.worker !== worker) continue;
            forget(session, error);
            if (route.waiting !== undefined) fail(session, error);
          }
        },
      });
      channels.set(worker, channel);
    }
    return channel;
  };
  const forward = (route: Route, m: DeviceToVerifier): void => {
    if (route.worker) channelTo(route.worker).send(m);
    else local.receive(m);
  };

  /** The relay's engine when it serves the session's model (or the session names none), else a worker's. */
  const place = async (model: string | undefined): Promise<WorkerEngine | undefined> => {
    const mine = opts.engine ? await own().then((b) => b.engine.info.model, () => undefined) : undefined;
    if (mine !== undefined && (model === undefined || model === mine)) return undefined;
    const worker = opts.workers?.verifier(model);
    if (worker) return worker;
    // The relay's own engine answers for itself (a model it does not serve: api/unknown-model).
    if (opts.engine) return undefined;
    throw noEngine(model);
  };

  const handle = async (m: DeviceToVerifier): Promise<void> => {
    if (m.type === 'open') {
      const previous = routes.get(m.session);
      clearTimeout(previous?.timer);
      routes.delete(m.session);
      gone.delete(m.session);
      if (previous) forward(previous, { type: 'close', session: m.session });
      if (routes.size >= VERIFY_LIMITS.maxSessions) {
        throw new FerryError('verify/too-many-sessions', `A socket may hold ${VERIFY_LIMITS.maxSessions} speculative sessions at once; close one first.`);
      }
      const route: Route = { worker: await place(m.model), promptLength: m.prompt.length, rounds: 0, waiting: 'open' };
      if (socket.readyState !== socket.OPEN) return;
      routes.set(m.session, route);
      due(m.session, route, 'open', 0);
      forward(route, m);
      return;
    }
    const route = routes.get(m.session);
    if (!route) {
      const lost = gone.get(m.session);
      if (m.type === 'close') gone.delete(m.session);
      else if (lost) throw lost;
      else throw new FerryError('verify/unknown-session', `No speculative session "${m.session}" is open on this socket: open it first.`);
      return;
    }
    if (m.type === 'close') {
      clearTimeout(route.timer);
      routes.delete(m.session);
    } else if (route.waiting !== undefined) {
      throw new FerryError('verify/out-of-order', `Session "${m.session}" has ${route.waiting === 'open' ? 'its open' : 'a round'} in flight; send round ${m.round} once it is answered.`);
    } else {
      // The first round evaluates the prompt too.
      due(m.session, route, m.round, m.draft.length + (++route.rounds === 1 ? route.promptLength : 1));
    }
    forward(route, m);
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
    local.close();
    for (const channel of channels.values()) channel.end();
    channels.clear();
    for (const route of routes.values()) clearTimeout(route.timer);
    routes.clear();
  });
}
