/**
 * A node's link to its relay (src/core/protocol/workers.ts): one WebSocket over which, answering the relay's
 * challenge, it says hello with its measured profile and its public key (and, for a device node, its proof of
 * membership of its space), runs what it is assigned on its RunHost, sends every event back in order (sealed by
 * the host), and heartbeats. A cloud worker also serves bare generations the relay forwards from its
 * OpenAI-compatible API (`generate`/`cancel`), on the same engine, and — when it can verify drafts (`verifier`) —
 * device speculative sessions the relay routes to it (`verify` on a channel per device socket, `verified` back).
 * The one implementation for `ferry worker` processes (server/worker/remote.ts opens the socket with the worker
 * token) and browsers offering themselves as nodes (src/browser/device-node.ts).
 * Runs belong to the connection they were assigned on: when it drops, the node abandons them (the relay hands
 * them on) and reconnects with backoff. A refusal (wrong token, other protocol version, a full space) is fatal,
 * not retried.
 */
import { FerryError, isFerryError } from '../errors.ts';
import { generateWithTools } from '../llm/tool-generation.ts';
import { RelayToWorkerSchema, WORKER_PROTOCOL_VERSION, parseWire, workerPaths, type DeviceToVerifier, type SpaceCredentials, type VerifierToDevice, type WorkerProfile, type WorkerToRelay } from '../protocol/index.ts';
import type { RunHost } from './run-host.ts';

/** An event handler whose parameter is checked both ways, as DOM handler properties are (each WebSocket has its own event types). */
type Handler<E> = { bivariant(event: E): void }['bivariant'];

/** The part of the Web-standard WebSocket a link uses (the `ws` package's WebSocket has it too). */
export interface LinkSocket {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<unknown> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface NodeLinkOptions {
  relayUrl: string;
  host: RunHost;
  profile: WorkerProfile;
  /** A device node's space (spaceCredentials(secret)), whose membership it proves; absent for a cloud worker. */
  space?: SpaceCredentials;
  /** Opens the socket to `url`; `refuse` ends the link for good (e.g. the relay answered the upgrade with 401). */
  open(url: string, refuse: (err: FerryError) => void): LinkSocket;
  log(message: string, details?: Record<string, unknown>): void;
  onState?(state: LinkState, detail?: string): void;
  /** The runs this node has now, after each is assigned or ends. */
  onRuns?(active: number): void;
  /** Verifies devices' drafts: each channel (a device socket the relay routes sessions from) gets its own sessions. */
  verifier?: LinkVerifier;
}

/** A node's draft verifier, as the link drives it. */
export interface LinkVerifier {
  /** A channel's sessions; `send` answers on the channel. */
  open(send: (m: VerifierToDevice) => void): { receive(m: DeviceToVerifier): void; close(): void };
}

const OPEN = 1;
const MAX_BACKOFF_MS = 30_000;

export class NodeLink {
  #socket: LinkSocket | undefined;
  #closing = false;
  #backoffMs = 500;
  #fatal: ((err: FerryError) => void) | undefined;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** The id the relay gave it on the current connection. */
  id: string | undefined;

  constructor(private readonly opts: NodeLinkOptions) {}

  /**
   * Connects and stays connected (reconnecting after drops). Resolves at the first welcome; rejects on a refusal
   * before it — later refusals go to `onFatal`.
   */
  start(onFatal: (err: FerryError) => void): Promise<string> {
    return new Promise((resolve, reject) => {
      let welcomed = false;
      this.#fatal = (err) => {
        this.#closing = true;
        this.opts.onState?.('closed', err.message);
        if (welcomed) onFatal(err);
        else reject(err);
      };
      this.#connect((id) => {
        if (!welcomed) resolve(id);
        welcomed = true;
      });
    });
  }

  /** Leaves: runs are cut, checkpointed and published (the relay moves them on), then the socket closes. */
  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retry);
    await this.opts.host.drain();
    this.#socket?.close(1000, 'node leaving');
    this.opts.onState?.('closed');
  }

  #connect(onWelcome: (id: string) => void): void {
    const url = new URL(workerPaths.connect, this.opts.relayUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.opts.onState?.('connecting');
    const ws = this.opts.open(url.href, (err) => this.#fatal?.(err));
    this.#socket = ws;
    const runs = new Set<string>();
    const calls = new Map<number, AbortController>();
    const channels = new Map<number, ReturnType<LinkVerifier['open']>>();
    let heartbeat: ReturnType<typeof setInterval> | undefined;
    const send = (m: WorkerToRelay): void => {
      if (ws.readyState === OPEN) ws.send(JSON.stringify(m));
    };

    /** The host's keyed prefixes, when they changed since this connection last sent them. */
    let sentPrefixes: readonly string[] = [];
    /** Welcomed on this connection: the relay takes nothing but the hello before. */
    let welcomed = false;
    const sendPrefixes = (): void => {
      if (!welcomed) return;
      const keys = this.opts.host.heldPrefixes;
      if (keys === sentPrefixes || (keys.length === sentPrefixes.length && keys.every((k, i) => k === sentPrefixes[i]))) return;
      sentPrefixes = keys;
      send({ type: 'prefixes', keys });
    };
    // Refreshed after each generation of a run too: a long run's new prefixes are listed before it ends.
    const unlisten = this.opts.host.onPrefixes(sendPrefixes);

    ws.onopen = () => {
      this.#backoffMs = 500;
    };
    /** The hello answers the relay's challenge: a device node signs its nonce to prove its space. */
    const hello = async (nonce: string): Promise<void> => {
      const publicKey = this.opts.host.publicKey;
      const space = this.opts.space ? await this.opts.space.prove(nonce, publicKey) : undefined;
      send({ type: 'hello', protocol: WORKER_PROTOCOL_VERSION, profile: this.opts.profile, publicKey, ...(space ? { space } : {}) });
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = parseWire(RelayToWorkerSchema, JSON.parse(String(event.data)), 'A relay message', 'protocol/bad-message');
      } catch (err) {
        this.opts.log('malformed message from the relay; reconnecting', { error: err instanceof Error ? err.message : String(err) });
        ws.close(1008, 'malformed message');
        return;
      }
      switch (message.type) {
        case 'challenge':
          hello(message.nonce).catch((err: unknown) => {
            this.opts.log('could not answer the relay\'s challenge', { error: err instanceof Error ? err.message : String(err) });
            ws.close(1011, 'no hello');
          });
          break;
        case 'welcome':
          this.id = message.worker;
          welcomed = true;
          sendPrefixes();
          heartbeat = setInterval(() => send({ type: 'heartbeat' }), message.heartbeatMs);
          this.opts.onState?.('connected');
          onWelcome(message.worker);
          break;
        case 'assign': {
          const { run, request } = message;
          runs.add(run);
          this.opts.log('run assigned', { run, attempt: message.attempt, input: request.input.type });
          this.opts.host.start(run, request, {
            emit: (e) => send({ type: 'event', run, event: e }),
            finish: (status, error) => {
              runs.delete(run);
              // The host refreshed its prefixes before the end: the relay lists them by the time anyone sees it.
              sendPrefixes();
              send({ type: 'finished', run, status, ...(error ? { error } : {}) });
              this.opts.onRuns?.(runs.size);
            },
          }, message.attempt);
          this.opts.onRuns?.(runs.size);
          break;
        }
        case 'stop':
          void this.opts.host.stop(message.run);
          break;
        case 'generate': {
          const { call, request } = message;
          const abort = new AbortController();
          calls.set(call, abort);
          void (async () => {
            try {
              const { tools, ...rest } = request;
              const engine = this.opts.host.engine;
              const events = tools ? generateWithTools(engine, { ...rest, signal: abort.signal }, tools) : engine.generate({ ...rest, signal: abort.signal });
              // Only the engine's own fields cross the wire (a tool generation's done event has more).
              for await (const event of events) send({ type: 'generation', call, event: event.type === 'done' ? { type: 'done', finishReason: event.finishReason, text: event.text, tokens: event.tokens, stats: event.stats } : event });
            } catch (err) {
              const error = isFerryError(err) ? { code: err.code, message: err.message } : { code: 'llm/generate-failed', message: err instanceof Error ? err.message : String(err) };
              send({ type: 'generation-failed', call, error });
            } finally {
              calls.delete(call);
            }
          })();
          break;
        }
        case 'cancel':
          calls.get(message.call)?.abort();
          break;
        case 'verify': {
          const { channel, message: m } = message;
          const verifier = this.opts.verifier;
          if (!verifier) {
            if (m.type !== 'close') send({ type: 'verified', channel, message: { type: 'error', session: m.session, error: { code: 'verify/no-engine', message: 'This node does not verify drafts.' } } });
            break;
          }
          let sessions = channels.get(channel);
          if (!sessions) channels.set(channel, (sessions = verifier.open((reply) => send({ type: 'verified', channel, message: reply }))));
          sessions.receive(m);
          break;
        }
        case 'verify-end':
          channels.get(message.channel)?.close();
          channels.delete(message.channel);
          break;
        case 'refused':
          this.#fatal?.(new FerryError('relay/worker-refused', `The relay refused this node: ${message.error.message}`, { details: { code: message.error.code } }));
          ws.close(1000);
          break;
      }
    };
    ws.onerror = () => this.opts.log('the connection to the relay failed');
    ws.onclose = () => {
      clearInterval(heartbeat);
      unlisten();
      // The relay hands these to other nodes once it notices; continuing them here would make two writers.
      for (const run of runs) this.opts.host.abandon(run);
      if (runs.size > 0) {
        runs.clear();
        this.opts.onRuns?.(0);
      }
      for (const abort of calls.values()) abort.abort();
      for (const sessions of channels.values()) sessions.close();
      channels.clear();
      if (this.#closing) return;
      const wait = this.#backoffMs;
      this.#backoffMs = Math.min(MAX_BACKOFF_MS, this.#backoffMs * 2);
      this.opts.onState?.('disconnected', `reconnecting in ${wait} ms`);
      this.opts.log(`disconnected from the relay; reconnecting in ${wait} ms`);
      this.#retry = setTimeout(() => this.#connect(onWelcome), wait);
    };
  }
}
