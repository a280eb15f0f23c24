/**
 * A run's secrets on the wire (DESIGN §9 "Keys and members"), shared by whoever starts a run (a device, a parent
 * run starting its children), the worker that runs it and whoever follows it:
 * - the session key is sealed to each worker the run may go to (worker-keys.ts), never sent in the clear;
 * - its input and every event its worker reports are sealed with the session key, bound to the snapshot and the run
 *   (snapshot/messages.ts): the relay stores and forwards them and reads none;
 * - following its events takes the run's read capability, which anyone holding the session key derives; the relay
 *   keeps only its hash (`readVerifier`). Knowing a run's id is not enough.
 */
import { FerryError } from '../errors.ts';
import { cachedPromise } from '../promise-cache.ts';
import { deriveSessionKeys, openMessage, sealMessage, type SessionKeys } from '../snapshot/index.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';
import type { RelayHttp } from './http-client.ts';
import { parseWire } from './validate.ts';
import {
  CAPABILITY_PROTOCOL_PREFIX,
  RUN_EVENTS_PROTOCOL,
  RunInputSchema,
  type RelayRunEvent,
  type RunInput,
  type RunMessage,
  type RunPlacement,
  type RunRecord,
  type SealedRunEvent,
  type WireRunInput,
} from './wire.ts';
import { mayRunOn, type WorkerList } from './workers.ts';
import { sealKeyTo } from './worker-keys.ts';

/** One event of a run as its worker reports it and a follower reads it (the runtime's events, `resumed`, `published`). */
export type RunEvent = { type: string } & Record<string, unknown>;

/** A message of a run's stream as a follower with the session key reads it. */
export interface OpenRunMessage {
  seq: number;
  event: RunEvent;
}

const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);
const inputPurpose = (snapshot: string): string => `ferry/run-input/${snapshot}`;
const eventPurpose = (run: string): string => `ferry/run-event/${run}`;

/** Read capabilities by the key bytes they came from: a move starts two runs of one session (move-ahead.ts). */
const readTokens = new WeakMap<Uint8Array, Promise<string>>();

/** The run read capability of a session key (the same for every run of the session). */
export function runReadToken(key: Uint8Array): Promise<string> {
  return cachedPromise(readTokens, key, () => deriveReadToken(key));
}

async function deriveReadToken(key: Uint8Array): Promise<string> {
  const master = await globalThis.crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, 'HKDF', false, ['deriveBits']);
  const bits = await globalThis.crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: utf8('ferry/session-key/v1'), info: utf8('run-read-capability') }, master, 256);
  return toBase64Url(new Uint8Array(bits));
}

/** What the relay keeps of a read capability: its SHA-256 (as the relay hashes every token), base64url. */
export async function runReadVerifier(token: string): Promise<string> {
  return toBase64Url(new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', utf8(token))));
}

/** The subprotocols that open a run's event stream with its read capability. */
export function eventStreamProtocols(token: string): string[] {
  return [RUN_EVENTS_PROTOCOL, `${CAPABILITY_PROTOCOL_PREFIX}${token}`];
}

/** The read capability among a WebSocket upgrade's offered subprotocols, if any. */
export function capabilityOf(protocolHeader: string | undefined): string | undefined {
  const offered = (protocolHeader ?? '').split(',').map((p) => p.trim());
  const cap = offered.find((p) => p.startsWith(CAPABILITY_PROTOCOL_PREFIX))?.slice(CAPABILITY_PROTOCOL_PREFIX.length);
  return cap && /^[A-Za-z0-9_-]{43}$/.test(cap) ? cap : undefined;
}

export async function sealRunInput(keys: SessionKeys, snapshot: string, input: RunInput | { type: 'resume' }): Promise<WireRunInput> {
  if (input.type === 'resume') return input;
  return { type: 'sealed', box: toBase64Url(await sealMessage(keys, inputPurpose(snapshot), input)) };
}

export async function openRunInput(keys: SessionKeys, snapshot: string, input: WireRunInput): Promise<RunInput | { type: 'resume' }> {
  if (input.type === 'resume') return input;
  const value = await openMessage(keys, inputPurpose(snapshot), fromBase64Url(input.box, 'protocol/bad-message'));
  return parseWire(RunInputSchema, value, 'The run\'s input', 'protocol/bad-message');
}

export async function sealRunEvent(keys: SessionKeys, run: string, event: RunEvent): Promise<SealedRunEvent> {
  return { type: 'sealed', box: toBase64Url(await sealMessage(keys, eventPurpose(run), event)) };
}

/** Opens a run's stream for someone holding its session key: sealed events opened, the relay's own passed on. */
export class RunEventReader {
  private constructor(
    private readonly keys: SessionKeys,
    private readonly run: string,
    /** The capability the stream is opened with. */
    readonly token: string,
  ) {}

  static async for(key: Uint8Array, run: string): Promise<RunEventReader> {
    return new RunEventReader(await deriveSessionKeys(key), run, await runReadToken(key));
  }

  get protocols(): string[] {
    return eventStreamProtocols(this.token);
  }

  /** The message with its event opened. */
  async openMessage(message: RunMessage): Promise<OpenRunMessage> {
    return { seq: message.seq, event: await this.open(message.event) };
  }

  /** The event as its worker reported it; throws a typed error when it was not sealed for this run with this key. */
  async open(event: RunMessage['event']): Promise<RunEvent | RelayRunEvent> {
    if (event.type !== 'sealed') return event;
    const value = await openMessage(this.keys, eventPurpose(this.run), fromBase64Url(event.box, 'relay/bad-response'));
    if (typeof value !== 'object' || value === null || typeof (value as { type?: unknown }).type !== 'string') {
      throw new FerryError('relay/bad-response', 'A sealed run event holds no event; the run\'s stream is damaged.');
    }
    return value as RunEvent;
  }
}

/** What a starter gives to start a run: the snapshot it published, its secrets, and where the run may go. */
export interface SealedRunStart {
  snapshot: string;
  writeToken: string;
  key: Uint8Array;
  input: RunInput | { type: 'resume' };
  where?: RunPlacement | undefined;
  maxTokens?: number | undefined;
}

/**
 * Starts a run: seals the session key to every worker the placement allows (from `workers`, or the relay's list now,
 * with the space's device nodes when the placement names a space), seals the input, and posts it. Throws
 * relay/no-worker (relay/unknown-node for a pin) when no attached worker may take it.
 */
export async function startSealedRun(http: RelayHttp, start: SealedRunStart, workers?: WorkerList): Promise<RunRecord> {
  const list = workers ?? (await http.listWorkers(start.where?.space));
  const eligible = list.workers.filter((w) => mayRunOn(start.where, w));
  if (eligible.length === 0) {
    if (start.where?.node !== undefined) throw new FerryError('relay/unknown-node', `Node ${start.where.node} is not attached to this relay now; list the workers again and pick one that is there.`);
    throw new FerryError('relay/no-worker', start.where?.space !== undefined && start.where.cloud === false
      ? 'No device of this space offers itself as a node now: open Ferry on another of your devices and turn on "Offer this device as a node", or allow the cloud.'
      : 'No worker that may run this session is attached to the relay: run `ferry start` (it runs one), or attach one with `ferry worker --relay URL`.');
  }
  // The sealing steps are independent: done at once, they cost the slowest one, not their sum, before the request.
  const [sealed, input, readVerifier] = await Promise.all([
    Promise.all(eligible.map(async (w) => [w.publicKey, await sealedKeyFor(w.publicKey, start.key, start.snapshot)] as const)),
    deriveSessionKeys(start.key).then((keys) => sealRunInput(keys, start.snapshot, start.input)),
    runReadToken(start.key).then(runReadVerifier),
  ]);
  return http.startRun({
    snapshot: start.snapshot,
    writeToken: start.writeToken,
    keys: Object.fromEntries(sealed),
    input,
    readVerifier,
    ...(start.where ? { where: start.where } : {}),
    ...(start.maxTokens ? { maxTokens: start.maxTokens } : {}),
  });
}

/**
 * The session key sealed to a worker for a snapshot, sealed once per key array: the runs of a move (a warm run, then
 * the resume: move-ahead.ts) carry the same box, which the worker has opened already.
 */
const sealedKeys = new WeakMap<Uint8Array, Map<string, Promise<string>>>();

export function sealedKeyFor(publicKey: string, key: Uint8Array, snapshot: string): Promise<string> {
  let byWorker = sealedKeys.get(key);
  if (!byWorker) sealedKeys.set(key, (byWorker = new Map()));
  return cachedPromise(byWorker, `${publicKey}/${snapshot}`, () => sealKeyTo(publicKey, key, snapshot));
}
