/**
 * Edge drafts, cloud verifies (src/core/protocol/verify.ts): a device's speculative sessions. A session for the
 * relay's own model (or naming none, while the relay has one) is verified by the relay's engine (llm/verify-sessions.ts);
 * one for a model the relay does not serve, or any when it serves none, goes to an attached worker that verifies
 * that model, over the worker's link (one channel per device socket and worker), where that worker's own batcher
 * verifies it with its other sessions' rounds. The relay checks every message before it forwards it and answers
 * nothing on a worker's behalf but this: a worker that leaves answers each of its sessions' pending rounds with
 * verify/connection-lost (the device resumes from the tokens decided so far). A malformed message closes the socket
 * (1008); a session's own failure is answered on that session and leaves the others alone.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { FerryError, isFerryError } from '../../src/core/errors.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { DeviceToVerifierSchema, VERIFY_LIMITS, parseWire, verifyPath, type DeviceToVerifier, type VerifierToDevice } from '../../src/core/protocol/index.ts';
import { VerifyBatcher, type VerifyBatchOptions } from '../llm/verify-batch.ts';
import { VerifySessions } from '../llm/verify-sessions.ts';
import type { VerifyChannel, WorkerEngine } from '../relay/worker-engines.ts';

export interface VerifyRoutesOptions {
  /** The engine that verifies (the relay's own, once loaded); undefined when the relay serves no model. */
  readonly engine: (() => Promise<Engine>) | undefined;
  /** Attached workers that verify: sessions the relay's own engine cannot take go to one serving their model. */
  readonly workers?: { verifier(model: string | undefined): WorkerEngine | undefined };
  readonly batch?: VerifyBatchOptions;
}

/** Where a session lives: the relay's engine (no worker) or a worker's; `waiting` while an answer is due. */
interface Route {
  readonly worker: WorkerEngine | undefined;
  waiting: 'open' | 'round' | undefined;
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
  /** An answer from where `session` lives; anything else (a late answer from a worker it no longer lives on) is dropped. */
  const answer = (from: WorkerEngine | undefined, m: VerifierToDevice): void => {
    const route = m.session === undefined ? undefined : routes.get(m.session);
    if (!route || route.worker !== from) return;
    // A session that failed to open is not there: it does not count against the limit.
    if (route.waiting === 'open' && m.type === 'error') routes.delete(m.session!);
    route.waiting = undefined;
    send(m);
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
            routes.delete(session);
            gone.set(session, error);
            // Bounded: a device that never closes what it lost cannot grow it past a socket's sessions.
            if (gone.size > VERIFY_LIMITS.maxSessions) gone.delete(gone.keys().next().value!);
            if (route.waiting) fail(session, error);
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
      routes.delete(m.session);
      gone.delete(m.session);
      if (previous) forward(previous, { type: 'close', session: m.session });
      if (routes.size >= VERIFY_LIMITS.maxSessions) {
        throw new FerryError('verify/too-many-sessions', `A socket may hold ${VERIFY_LIMITS.maxSessions} speculative sessions at once; close one first.`);
      }
      const route: Route = { worker: await place(m.model), waiting: 'open' };
      if (socket.readyState !== socket.OPEN) return;
      routes.set(m.session, route);
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
    if (m.type === 'close') routes.delete(m.session);
    else if (route.waiting) throw new FerryError('verify/out-of-order', `Session "${m.session}" has ${route.waiting === 'open' ? 'its open' : 'a round'} in flight; send round ${m.round} once it is answered.`);
    else route.waiting = 'round';
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
    routes.clear();
  });
}
