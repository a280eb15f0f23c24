/**
 * `ferry worker --relay URL`: a cloud worker in its own process (another machine, a GPU) attached to a relay over
 * one WebSocket (src/core/protocol/workers.ts). It says hello with its measured profile, runs what it is assigned
 * with the same RunHost as the relay's embedded worker, sends every event back in order, and heartbeats.
 * Runs belong to the connection they were assigned on: when it drops, the worker abandons them (the relay hands
 * them to another worker) and reconnects with backoff. A wrong token or protocol version is fatal, not retried.
 */
import WebSocket from 'ws';
import { FerryError } from '../../src/core/errors.ts';
import {
  ErrorBodySchema,
  RelayToWorkerSchema,
  WORKER_PROTOCOL_VERSION,
  fromBase64Url,
  parseWire,
  workerPaths,
  type WorkerProfile,
  type WorkerToRelay,
} from '../../src/core/protocol/index.ts';
import * as v from 'valibot';
import type { RunHost } from '../../src/core/node/run-host.ts';

export interface RemoteWorkerOptions {
  relayUrl: string;
  token: string;
  worker: RunHost;
  profile: WorkerProfile;
  log: (message: string, details?: Record<string, unknown>) => void;
}

const MAX_BACKOFF_MS = 30_000;
const MAX_PAYLOAD = 1024 * 1024;

export class RemoteWorker {
  private socket: WebSocket | undefined;
  private closing = false;
  private backoffMs = 500;
  /** The id the relay gave it on the current connection. */
  id: string | undefined;
  private fatal: ((err: FerryError) => void) | undefined;

  constructor(private readonly opts: RemoteWorkerOptions) {}

  /**
   * Connects and stays connected (reconnecting after drops). Resolves at the first welcome; rejects on a fatal
   * refusal (bad token, other protocol version) — later fatal refusals go to `onFatal`.
   */
  start(onFatal: (err: FerryError) => void): Promise<string> {
    return new Promise((resolve, reject) => {
      let welcomed = false;
      this.fatal = (err) => (welcomed ? onFatal(err) : reject(err));
      this.connect((id) => {
        if (!welcomed) resolve(id);
        welcomed = true;
      });
    });
  }

  /** Leaves: runs are cut, checkpointed and published (the relay moves them on), then the socket closes. */
  async close(): Promise<void> {
    this.closing = true;
    await this.opts.worker.drain();
    this.socket?.close(1000, 'worker leaving');
  }

  private connect(onWelcome: (id: string) => void): void {
    const url = new URL(workerPaths.connect, this.opts.relayUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.opts.token}` }, maxPayload: MAX_PAYLOAD });
    this.socket = ws;
    const runs = new Set<string>();
    let heartbeat: NodeJS.Timeout | undefined;
    const send = (m: WorkerToRelay): void => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m));
    };

    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        const parsed = v.safeParse(ErrorBodySchema, safeJson(body));
        const error = parsed.success ? parsed.output.error : { code: 'relay/worker-refused', message: `The relay answered HTTP ${res.statusCode}.` };
        if (res.statusCode === 401 || res.statusCode === 403) {
          this.closing = true;
          this.fatal?.(new FerryError('relay/worker-refused', `The relay refused this worker: ${error.message}`));
        } else {
          this.opts.log(`the relay refused the connection (${error.code}); retrying`);
        }
        ws.terminate();
      });
    });
    ws.on('open', () => {
      this.backoffMs = 500;
      send({ type: 'hello', protocol: WORKER_PROTOCOL_VERSION, profile: this.opts.profile });
    });
    ws.on('message', (data) => {
      let message;
      try {
        message = parseWire(RelayToWorkerSchema, JSON.parse(String(data)), 'A relay message', 'protocol/bad-message');
      } catch (err) {
        this.opts.log('malformed message from the relay; reconnecting', { error: err instanceof Error ? err.message : String(err) });
        ws.close(1008, 'malformed message');
        return;
      }
      switch (message.type) {
        case 'welcome':
          this.id = message.worker;
          heartbeat = setInterval(() => send({ type: 'heartbeat' }), message.heartbeatMs);
          onWelcome(message.worker);
          break;
        case 'assign': {
          const { run, request } = message;
          runs.add(run);
          this.opts.log('run assigned', { run, attempt: message.attempt, input: request.input.type });
          this.opts.worker.start(run, request, fromBase64Url(request.key, 'protocol/bad-message'), {
            emit: (event) => send({ type: 'event', run, event }),
            finish: (status, error) => {
              runs.delete(run);
              send({ type: 'finished', run, status, ...(error ? { error } : {}) });
            },
          });
          break;
        }
        case 'stop':
          void this.opts.worker.stop(message.run);
          break;
        case 'refused':
          this.closing = true;
          this.fatal?.(new FerryError('relay/worker-refused', `The relay refused this worker: ${message.error.message}`));
          ws.close(1000);
          break;
      }
    });
    ws.on('error', (err) => this.opts.log(`connection to the relay failed: ${err.message}`));
    ws.on('close', () => {
      clearInterval(heartbeat);
      // The relay hands these to other workers once it notices; continuing them here would make two writers.
      for (const run of runs) this.opts.worker.abandon(run);
      runs.clear();
      if (this.closing) return;
      const wait = this.backoffMs;
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
      this.opts.log(`disconnected from the relay; reconnecting in ${wait} ms`);
      setTimeout(() => this.connect(onWelcome), wait);
    });
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
