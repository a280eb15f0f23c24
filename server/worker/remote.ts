/**
 * `ferry worker --relay URL`: a cloud worker in its own process (another machine, a GPU) attached to a relay over
 * the node link (src/core/host/node-link.ts), authenticated by the relay's worker token on the WebSocket upgrade. A
 * wrong token (the relay answers the upgrade with 401/403) is fatal, not retried.
 */
import WebSocket from 'ws';
import * as v from 'valibot';
import { FerryError } from '../../src/core/errors.ts';
import { NodeLink, type LinkVerifier } from '../../src/core/host/node-link.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import type { RunHost } from '../../src/core/host/run-host.ts';
import type { OpenSocket, StreamSocket } from '../../src/core/parallel/index.ts';
import { ErrorBodySchema, type WorkerProfile } from '../../src/core/protocol/index.ts';
import { VerifyBatcher } from '../llm/verify-batch.ts';
import { VerifySessions } from '../llm/verify-sessions.ts';

export interface RemoteWorkerOptions {
  relayUrl: string;
  token: string;
  worker: RunHost;
  profile: WorkerProfile;
  log: (message: string, details?: Record<string, unknown>) => void;
  /** Verifies the drafts of device sessions the relay routes here (engineLinkVerifier); absent: it does not. */
  verifier?: LinkVerifier;
}

/**
 * Device sessions the relay routes to this worker, verified with `engine`: every channel's rounds go through one
 * batcher, so sessions from many devices share passes. Undefined for an engine that cannot verify (an upstream's).
 */
export function engineLinkVerifier(engine: Engine): LinkVerifier | undefined {
  if (!engine.verify) return undefined;
  const batcher = Promise.resolve(new VerifyBatcher(engine));
  let serial = 0;
  return { open: (send) => new VerifySessions(() => batcher, send, `verify-${++serial}`) };
}

/** Run events can carry a generation's token ids: a few hundred KB. */
const MAX_PAYLOAD = 1024 * 1024;

/** How runs on this process follow other runs' event streams (a parent its children): Node 20 has no WebSocket. */
export const openNodeSocket: OpenSocket = (url, protocols) => new WebSocket(url, protocols, { maxPayload: MAX_PAYLOAD }) as unknown as StreamSocket;

export class RemoteWorker {
  readonly #link: NodeLink;

  constructor(opts: RemoteWorkerOptions) {
    this.#link = new NodeLink({
      relayUrl: opts.relayUrl,
      host: opts.worker,
      profile: opts.profile,
      log: opts.log,
      ...(opts.verifier ? { verifier: opts.verifier } : {}),
      open: (url, refuse) => {
        const ws = new WebSocket(url, { headers: { authorization: `Bearer ${opts.token}` }, maxPayload: MAX_PAYLOAD });
        ws.on('unexpected-response', (_req, res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => {
            const parsed = v.safeParse(ErrorBodySchema, safeJson(body));
            const error = parsed.success ? parsed.output.error : { code: 'relay/worker-refused', message: `The relay answered HTTP ${res.statusCode}.` };
            if (res.statusCode === 401 || res.statusCode === 403) refuse(new FerryError('relay/worker-refused', `The relay refused this worker: ${error.message}`));
            else opts.log(`the relay refused the connection (${error.code}); retrying`);
            ws.terminate();
          });
        });
        return ws;
      },
    });
  }

  /** The id the relay gave it on the current connection. */
  get id(): string | undefined {
    return this.#link.id;
  }

  start(onFatal: (err: FerryError) => void): Promise<string> {
    return this.#link.start(onFatal);
  }

  close(): Promise<void> {
    return this.#link.close();
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
