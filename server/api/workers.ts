/**
 * Where cloud workers and device nodes attach (src/core/protocol/workers.ts). A cloud worker authenticates with
 * the worker token on the upgrade (a wrong token gets a 4xx JSON answer, no socket). A connection without one is a
 * device node: the relay sends a challenge first on every connection, and a device node's hello must prove it is a
 * member of its space by signing it (spaces.ts) — knowing a space's id proves nothing, and a node that cannot prove
 * membership gets no runs and takes none of its space's places. Until it has proven something a connection is a
 * stranger's: one client address may hold only a few of those, and each is dropped unless it says hello in time.
 * After hello the worker reports its runs' events (sealed) and heartbeats. A malformed message closes the connection
 * (1008) — the relay never trusts a worker's half-parsed words — and, like a closed socket or three missed
 * heartbeats, loses the worker: the dispatcher moves its runs to another.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { FerryError } from '../../src/core/errors.ts';
import {
  SPACE_HEADER,
  SPACE_LIMITS,
  SpaceIdSchema,
  WORKER_CLOSE,
  WORKER_PROTOCOL_VERSION,
  WorkerToRelaySchema,
  parseWire,
  verifySpaceMembership,
  workerPaths,
  type RelayToWorker,
  type WorkerList,
  type WorkerToRelay,
} from '../../src/core/protocol/index.ts';
import type { RunDispatch } from '../relay/run-dispatch.ts';
import { workerTokenMatches } from '../relay/worker-token.ts';
import { WorkerEngine, type ServingEngines } from '../relay/worker-engines.ts';

export interface WorkerRoutesOptions {
  dispatcher: RunDispatch;
  /** A cloud worker's engine serves /v1 while it is attached (device nodes' never do). */
  engines: ServingEngines;
  workerToken: string;
  heartbeatMs: number;
}

/** A worker that has not said hello (and proven what it claims) by then is dropped. */
const HELLO_TIMEOUT_MS = 10_000;
/** How long the worker list waits for a worker that is still loading its model. */
const LIST_WAIT_MS = 30_000;
/** Heartbeats a worker may miss before it is given up on. */
const MISSED_HEARTBEATS = 3;

export async function workerRoutes(app: FastifyInstance, opts: WorkerRoutesOptions): Promise<void> {
  app.get(workerPaths.list, async (request, reply): Promise<WorkerList> => {
    void reply.header('cache-control', 'no-store');
    // Right after `ferry start` the embedded worker's model is still loading: answer once it is there, not with
    // an empty list that would read as "no cloud worker".
    await opts.dispatcher.arrived(LIST_WAIT_MS);
    const space = request.headers[SPACE_HEADER];
    return opts.dispatcher.list(space === undefined ? undefined : parseWire(SpaceIdSchema, space, `The ${SPACE_HEADER} header`));
  });

  /** Connections per client address that have proven nothing yet (device nodes before their hello is accepted). */
  const strangers = new Map<string, number>();
  const stranger = (address: string, delta: number): void => {
    const n = (strangers.get(address) ?? 0) + delta;
    if (n > 0) strangers.set(address, n);
    else strangers.delete(address);
  };

  app.get(workerPaths.connect, {
    websocket: true,
    preValidation: async (request) => {
      const header = request.headers.authorization;
      if (header === undefined) {
        // A device node: it proves membership of its space after the challenge. Until then it is a stranger.
        if ((strangers.get(request.ip) ?? 0) >= SPACE_LIMITS.unprovenPerAddress) {
          throw new FerryError('http/rate-limited', `Too many connections from your address are still to prove their space (at most ${SPACE_LIMITS.unprovenPerAddress}); wait for them to finish.`);
        }
        return;
      }
      const m = /^Bearer (\S+)$/.exec(header);
      if (!m) throw new FerryError('relay/token-required', 'A worker attaches with the relay\'s worker token: send Authorization: Bearer <token> (ferry worker --worker-token).');
      if (!workerTokenMatches(m[1]!, opts.workerToken)) throw new FerryError('relay/bad-token', 'That is not this relay\'s worker token: use the one in its <data>/worker-token, or the one it was started with.');
    },
  }, (socket, request) => {
    const cloud = request.headers.authorization !== undefined;
    if (!cloud) stranger(request.ip, +1);
    connection(socket, opts, request.log, { cloud, address: request.ip, proven: () => !cloud && stranger(request.ip, -1) });
  });
}

interface Peer {
  /** Authenticated by the worker token on the upgrade. */
  cloud: boolean;
  address: string;
  /** Called once when the connection stops being a stranger's (proven, or closed). */
  proven(): void;
}

function connection(socket: WebSocket, opts: WorkerRoutesOptions, log: FastifyInstance['log'], peer: Peer): void {
  const { dispatcher } = opts;
  const { cloud } = peer;
  let workerId: string | undefined;
  let engine: WorkerEngine | undefined;
  /** Its keyed prefixes as it last reported them (opaque here: HMACs under session keys the relay never holds). */
  let prefixes: readonly string[] = [];
  let lastSeen = Date.now();
  let lost = 'connection closed';
  /** Set once a hello is being checked: anything before the welcome is a protocol error. */
  let greeted = false;
  let stranger = true;
  const settleStranger = (): void => {
    if (!stranger) return;
    stranger = false;
    peer.proven();
  };
  const send = (m: RelayToWorker): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
  };
  const nonce = randomBytes(32).toString('base64url');
  const helloTimer = setTimeout(() => close(WORKER_CLOSE.protocolError, 'no hello'), HELLO_TIMEOUT_MS);
  const beat = setInterval(() => {
    if (Date.now() - lastSeen > MISSED_HEARTBEATS * opts.heartbeatMs) {
      lost = `no heartbeat for ${Date.now() - lastSeen} ms`;
      // terminate, not close: a hung worker would never finish a closing handshake.
      socket.terminate();
    }
  }, opts.heartbeatMs);
  const close = (code: number, why: string): void => {
    lost = why;
    socket.close(code, why.slice(0, 120));
  };
  const refuse = (error: { code: string; message: string }): void => {
    send({ type: 'refused', error });
    close(WORKER_CLOSE.refused, error.code);
  };
  send({ type: 'challenge', nonce });

  /** A hello: the version, then (device nodes) the proof of membership, then a place in the dispatcher. */
  const hello = async (message: Extract<WorkerToRelay, { type: 'hello' }>): Promise<void> => {
    if (message.protocol !== WORKER_PROTOCOL_VERSION) {
      return refuse({ code: 'relay/worker-protocol', message: `This relay speaks worker protocol ${WORKER_PROTOCOL_VERSION}, the worker ${message.protocol}: run the same Ferry version on both.` });
    }
    const membership = cloud ? undefined : message.space;
    if (!cloud && membership === undefined) {
      return refuse({ code: 'relay/token-required', message: 'A cloud worker attaches with the relay\'s worker token (ferry worker --worker-token); a device offering itself as a node proves its space.' });
    }
    if (membership && !(await verifySpaceMembership(membership, nonce, message.publicKey))) {
      log.warn({ space: membership.id }, 'a node could not prove membership of the space it named');
      return refuse({ code: 'relay/not-a-member', message: 'This device could not prove it is a member of the space it named; pair it again from a device of that space.' });
    }
    if (socket.readyState !== socket.OPEN) return;
    clearTimeout(helloTimer);
    settleStranger();
    let id: string;
    try {
      id = await dispatcher.attach({
        embedded: false,
        ...(membership ? { space: membership.id, address: peer.address } : {}),
        profile: message.profile,
        publicKey: message.publicKey,
        prefixes: () => prefixes,
        assign: (run, attempt, request) => send({ type: 'assign', run, attempt, request }),
        stop: (run) => send({ type: 'stop', run }),
        // Its socket is going away (or it is lost): nothing to send; it drops its runs when the socket closes.
        abandon: () => undefined,
      });
    } catch (err) {
      // The shared database is out of reach: not a refusal — the worker reconnects and says hello again.
      if (err instanceof FerryError && err.code === 'store/unavailable') return close(1013, 'try again later');
      return refuse(err instanceof FerryError ? { code: err.code, message: err.message } : { code: 'relay/worker-refused', message: String(err) });
    }
    workerId = id;
    if (cloud) {
      engine = new WorkerEngine(message.profile, send);
      opts.engines.add(id, engine);
    }
    send({ type: 'welcome', worker: id, heartbeatMs: opts.heartbeatMs });
  };

  // Messages are handled one after another: a hello's attach may wait on the shared database.
  let queue: Promise<void> = Promise.resolve();
  socket.on('message', (data, isBinary) => {
    lastSeen = Date.now();
    queue = queue.then(() => handle(data, isBinary)).catch((err: unknown) => {
      log.warn({ err, worker: workerId }, 'handling a worker message failed');
      close(WORKER_CLOSE.protocolError, 'internal error');
    });
  });

  async function handle(data: unknown, isBinary: boolean): Promise<void> {
    let message;
    try {
      if (isBinary) throw new FerryError('protocol/bad-message', 'Worker messages are JSON text.');
      message = parseWire(WorkerToRelaySchema, JSON.parse(String(data)), 'A worker message', 'protocol/bad-message');
    } catch (err) {
      log.warn({ err, worker: workerId }, 'malformed worker message');
      close(WORKER_CLOSE.protocolError, `malformed message: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    if (message.type === 'hello') {
      if (greeted) return close(WORKER_CLOSE.protocolError, 'hello sent twice');
      greeted = true;
      await hello(message);
      return;
    }
    if (workerId === undefined) return close(WORKER_CLOSE.protocolError, 'hello must come first');
    if (message.type === 'event') dispatcher.event(workerId, message.run, message.event);
    else if (message.type === 'finished') dispatcher.finished(workerId, message.run, message.status, message.error);
    else if (message.type === 'prefixes') prefixes = message.keys;
    else if (message.type === 'generation' || message.type === 'generation-failed') engine?.deliver(message);
    else if (message.type === 'verified') engine?.deliverVerified(message);
  }

  socket.on('close', () => {
    clearTimeout(helloTimer);
    clearInterval(beat);
    settleStranger();
    // After the message in hand: a hello still attaching is detached once it has.
    void queue.then(() => {
      if (workerId === undefined) return;
      opts.engines.remove(workerId, lost);
      dispatcher.detach(workerId, lost);
    });
  });
}
