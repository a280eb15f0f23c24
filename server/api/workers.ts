/**
 * Where cloud workers and device nodes attach (src/core/protocol/workers.ts). A cloud worker authenticates with
 * the worker token on the upgrade (a wrong token gets a 4xx JSON answer, no socket); a connection without one is a
 * device node, which must name its space in `hello` and is only given that space's runs. The first message must
 * be `hello` with the worker's profile; after that the worker reports its runs' events and heartbeats. A malformed message closes the
 * connection (1008) — the relay never trusts a worker's half-parsed words — and, like a closed socket or three
 * missed heartbeats, loses the worker: the dispatcher moves its runs to another.
 */
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { FerryError } from '../../src/core/errors.ts';
import {
  SPACE_HEADER,
  SpaceIdSchema,
  WORKER_CLOSE,
  WORKER_PROTOCOL_VERSION,
  WorkerToRelaySchema,
  parseWire,
  workerPaths,
  type RelayToWorker,
  type WorkerList,
} from '../../src/core/protocol/index.ts';
import type { Dispatcher } from '../relay/dispatcher.ts';
import { workerTokenMatches } from '../relay/worker-token.ts';
import { WorkerEngine, type ServingEngines } from '../relay/worker-engines.ts';

export interface WorkerRoutesOptions {
  dispatcher: Dispatcher;
  /** A cloud worker's engine serves /v1 while it is attached (device nodes' never do). */
  engines: ServingEngines;
  workerToken: string;
  heartbeatMs: number;
}

/** A worker that has not said hello by then is dropped. */
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

  app.get(workerPaths.connect, {
    websocket: true,
    preValidation: async (request) => {
      const header = request.headers.authorization;
      if (header === undefined) return; // a device node: its hello must name a space
      const m = /^Bearer (\S+)$/.exec(header);
      if (!m) throw new FerryError('relay/token-required', 'A worker attaches with the relay\'s worker token: send Authorization: Bearer <token> (ferry worker --worker-token).');
      if (!workerTokenMatches(m[1]!, opts.workerToken)) throw new FerryError('relay/bad-token', 'That is not this relay\'s worker token: use the one in its <data>/worker-token, or the one it was started with.');
    },
  }, (socket, request) => connection(socket, opts, request.log, request.headers.authorization !== undefined));
}

function connection(socket: WebSocket, opts: WorkerRoutesOptions, log: FastifyInstance['log'], cloud: boolean): void {
  const { dispatcher } = opts;
  let workerId: string | undefined;
  let engine: WorkerEngine | undefined;
  let lastSeen = Date.now();
  let lost = 'connection closed';
  const send = (m: RelayToWorker): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(m));
  };
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

  socket.on('message', (data, isBinary) => {
    lastSeen = Date.now();
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
      if (workerId !== undefined) return close(WORKER_CLOSE.protocolError, 'hello sent twice');
      clearTimeout(helloTimer);
      if (message.protocol !== WORKER_PROTOCOL_VERSION) {
        send({ type: 'refused', error: { code: 'relay/worker-protocol', message: `This relay speaks worker protocol ${WORKER_PROTOCOL_VERSION}, the worker ${message.protocol}: run the same Ferry version on both.` } });
        return close(WORKER_CLOSE.refused, 'protocol version');
      }
      const space = message.space;
      if (!cloud && space === undefined) {
        send({ type: 'refused', error: { code: 'relay/token-required', message: 'A cloud worker attaches with the relay\'s worker token (ferry worker --worker-token); a device offering itself as a node names its space.' } });
        return close(WORKER_CLOSE.refused, 'no token, no space');
      }
      let id: string;
      try {
        id = dispatcher.attach({
          embedded: false,
          ...(space !== undefined ? { space } : {}),
          profile: message.profile,
          assign: (run, attempt, request) => send({ type: 'assign', run, attempt, request }),
          stop: (run) => send({ type: 'stop', run }),
          // Its socket is going away (or it is lost): nothing to send; it drops its runs when the socket closes.
          abandon: () => undefined,
        });
      } catch (err) {
        const error = err instanceof FerryError ? { code: err.code, message: err.message } : { code: 'relay/worker-refused', message: String(err) };
        send({ type: 'refused', error });
        return close(WORKER_CLOSE.refused, error.code);
      }
      workerId = id;
      if (cloud) {
        engine = new WorkerEngine(message.profile, send);
        opts.engines.add(id, engine);
      }
      send({ type: 'welcome', worker: id, heartbeatMs: opts.heartbeatMs });
      return;
    }
    if (workerId === undefined) return close(WORKER_CLOSE.protocolError, 'hello must come first');
    if (message.type === 'event') dispatcher.event(workerId, message.run, message.event);
    else if (message.type === 'finished') dispatcher.finished(workerId, message.run, message.status, message.error);
    else if (message.type === 'generation' || message.type === 'generation-failed') engine?.deliver(message);
  });

  socket.on('close', () => {
    clearTimeout(helloTimer);
    clearInterval(beat);
    if (workerId !== undefined) {
      opts.engines.remove(workerId, lost);
      dispatcher.detach(workerId, lost);
    }
  });
}
