/**
 * Runs: resume a published snapshot on a worker (the dispatcher picks it), read the run's record, follow its events
 * over a WebSocket (from any seq: a reconnecting client catches up and misses nothing), and stop it (hand back: the
 * worker checkpoints, publishes and ends). Starting and stopping need the snapshot's write token; following the
 * events needs the run's read capability (offered as a WebSocket subprotocol, so it stays out of URLs and logs).
 */
import type { FastifyInstance } from 'fastify';
import { FerryError } from '../../src/core/errors.ts';
import { LIMITS, RunIdSchema, StartRunRequestSchema, WriteTokenSchema, capabilityOf, parseWire, paths, type RunRecord } from '../../src/core/protocol/index.ts';
import type { RunDispatch } from '../relay/run-dispatch.ts';
import type { RelayStore } from '../relay/relay-store.ts';
import type { RunLog } from '../relay/run-log.ts';

export interface RunRoutesOptions {
  store: RelayStore;
  runs: RunLog;
  /** Which worker runs which run (the embedded one and attached ones, or every replica's). */
  dispatcher: RunDispatch;
}

const unknownRun = (id: string): FerryError => new FerryError('relay/unknown-run', `There is no run ${id} on this relay.`);
const runId = (params: unknown): string => parseWire(RunIdSchema, (params as { id?: unknown }).id, 'The run id in the path');

function bearer(header: string | undefined): string {
  const m = header ? /^Bearer (\S+)$/.exec(header) : null;
  if (!m) throw new FerryError('relay/token-required', 'This needs the snapshot\'s write token: send Authorization: Bearer <token>.');
  return parseWire(WriteTokenSchema, m[1], 'The write token');
}

/** Needs @fastify/websocket registered on the app (app.ts does, once, for every WebSocket route). */
export async function runRoutes(app: FastifyInstance, opts: RunRoutesOptions): Promise<void> {
  const record = async (id: string): Promise<RunRecord> => {
    const r = await opts.runs.get(id);
    if (!r) throw unknownRun(id);
    return r;
  };

  app.post(paths.runs, { bodyLimit: LIMITS.maxJsonBody }, async (request, reply): Promise<RunRecord> => {
    const body = parseWire(StartRunRequestSchema, request.body, 'The request body');
    // The token first: a stranger learns nothing about the workers from a refusal.
    await opts.store.snapshots.authorize(body.snapshot, body.writeToken);
    await opts.dispatcher.checkPlacement(body);
    const run = await opts.runs.create(body.snapshot, body.readVerifier);
    await opts.dispatcher.start(run.id, body);
    void reply.code(202).header('cache-control', 'no-store');
    return run;
  });

  app.get(paths.run(':id'), async (request, reply): Promise<RunRecord> => {
    void reply.header('cache-control', 'no-store');
    return record(runId(request.params));
  });

  app.post(paths.runStop(':id'), async (request): Promise<RunRecord> => {
    const id = runId(request.params);
    const run = await record(id);
    await opts.store.snapshots.authorize(run.snapshot, bearer(request.headers.authorization));
    await opts.dispatcher.stop(id);
    return record(id);
  });

  app.get(paths.runEvents(':id'), {
    websocket: true,
    // Before the upgrade, so a bad request still gets a 4xx JSON answer.
    preValidation: async (request) => {
      const id = runId(request.params);
      await record(id);
      const token = capabilityOf(request.headers['sec-websocket-protocol']);
      if (!token) throw new FerryError('relay/capability-required', "Following a run's events takes its read capability, which whoever holds the session key derives; offer it as the WebSocket subprotocol ferry-cap.<token>.");
      if (!(await opts.runs.mayRead(id, token))) throw new FerryError('relay/bad-capability', "That is not this run's read capability; follow it with the session it runs.");
      const from = (request.query as { from?: unknown }).from;
      if (from !== undefined && !/^\d{1,9}$/.test(String(from))) throw new FerryError('protocol/bad-request', 'from must be an event seq (a non-negative integer).');
    },
  }, (socket, request) => {
    const id = runId(request.params);
    const from = Number((request.query as { from?: string }).from ?? 0);
    const stop = opts.runs.follow(id, from, (m) => {
      if (m === 'end') socket.close(1000, 'run ended');
      else socket.send(JSON.stringify(m));
    });
    socket.on('close', stop);
    // Clients only listen: anything they send is a protocol error.
    socket.on('message', () => socket.close(1008, 'this stream is one-way'));
  });
}
