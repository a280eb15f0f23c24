/**
 * The worker protocol (DESIGN §6, §9): how a cloud worker (`ferry worker --relay URL`, on another machine or GPU)
 * or a device offering itself as a node attaches to a relay and runs its runs. One WebSocket per worker; a cloud
 * worker authenticates with the relay's worker token on the upgrade (`Authorization: Bearer <token>`), a device
 * node proves it is a member of its space. Every message is JSON, a union tagged by `type`, validated on both sides
 * against these schemas. Separate unions per direction, and a version negotiated in `hello`.
 *
 *   relay → worker: challenge (a nonce, first on every connection) · welcome (its id, the heartbeat period) ·
 *                   assign (run this) · stop (hand it back) · refused · generate (a bare generation, for the
 *                   relay's OpenAI-compatible API) · cancel (that generation) · verify (a device's verify message,
 *                   verify.ts, on a channel: one per device socket) · verify-end (that socket closed)
 *   worker → relay: hello (profile, its public key, and a device node's proof of membership over the nonce) ·
 *                   event (a run's event, sealed, in order) · finished (a run ended) · heartbeat ·
 *                   prefixes (the KV prefixes its sessions left, keyed per session; see WirePrefixesSchema) ·
 *                   generation (an event of a generation the relay asked for) · generation-failed ·
 *                   verified (the verifier's answer on a channel)
 *
 * A run assignment carries what a run needs and nothing the worker keeps: the snapshot, the session key sealed to
 * this worker's public key, the write token (held in the worker's memory for the run only), and the input, sealed
 * with the session key. A worker that is lost (socket closed, heartbeats missed) loses its runs: the relay
 * reassigns each to another worker the key was sealed to, which resumes it from the last checkpoint published on
 * the snapshot.
 */
import * as v from 'valibot';
import { SpaceMembershipSchema, SpaceNonceSchema } from './spaces.ts';
import { DeviceToVerifierSchema, VerifierToDeviceSchema } from './verify.ts';
import { AssignedRunSchema, API_PREFIX, WirePromptSchema, RunIdSchema, RunStatusSchema, SealedRunEventSchema, WorkerIdSchema, type RunPlacement } from './wire.ts';
import { WorkerPublicKeySchema } from './worker-keys.ts';
import { MAX_WIRE_PREFIXES } from '../llm/prefix-keys.ts';

/** 3: keys sealed to the worker's announced public key, sealed events, proven space membership. 4: verify channels, keyed prefixes. */
export const WORKER_PROTOCOL_VERSION = 4;

export const workerPaths = {
  /** WebSocket: a worker attaches here. */
  connect: `${API_PREFIX}/workers/connect`,
  /** GET: the attached workers and their profiles (no secrets). */
  list: `${API_PREFIX}/workers`,
} as const;

/** A worker token: 256 random bits, base64url (what the relay keeps in <data>/worker-token). */
export const WorkerTokenSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 43 base64url characters'));

const Rate = v.pipe(v.number(), v.minValue(0), v.maxValue(1e9));
const Label = (max: number) => v.pipe(v.string(), v.maxLength(max));

/** What a worker offers, measured on itself at attach time (DESIGN §7's placement reads it). */
export const WorkerProfileSchema = v.strictObject({
  /** A readable name: host and pid by default. */
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  /** The engine's model id (a GGUF file's SHA-256) and tokenizer id: a session resumes token-identically only on the same. */
  model: Label(256),
  tokenizer: Label(256),
  engine: Label(64),
  device: Label(256),
  /** The engine's context window, in tokens. */
  contextSize: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1 << 24)),
  /** Runs it takes at once. */
  slots: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(64)),
  /** From a short real generation on this worker at start. */
  prefillTps: Rate,
  decodeTps: Rate,
  /** What its tokens cost, USD per 1,000; absent: nothing (the relay owner's own hardware). */
  price: v.optional(v.strictObject({ promptPer1k: v.pipe(v.number(), v.minValue(0), v.maxValue(1e6)), outputPer1k: v.pipe(v.number(), v.minValue(0), v.maxValue(1e6)) })),
  /** Its engine verifies devices' drafts: the relay routes verify sessions for its model to it. */
  verifies: v.optional(v.boolean()),
});
export type WorkerProfile = v.InferOutput<typeof WorkerProfileSchema>;

/**
 * The prefixes a worker's KV cache holds from the sessions it ran, each an HMAC under that session's prefix key
 * (llm/prefix-keys.ts `keyPrefixes`), never raw token hashes: those would let anyone reading the worker list confirm
 * a guessed prompt. Opaque to the relay and to every client without the session's key; bounded.
 */
export const WirePrefixesSchema = v.pipe(
  v.array(v.pipe(v.string(), v.regex(/^[0-9a-z]{1,7}\.[0-9a-z]{1,7}$/, 'must be a keyed prefix key'))),
  v.maxLength(MAX_WIRE_PREFIXES),
  v.readonly(),
);

/** A generation the relay asks a cloud worker for (GenerateRequest without its signal; `cancel` stops it). */
export const WireGenerateRequestSchema = v.strictObject({
  prompt: WirePromptSchema,
  maxTokens: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1 << 24)),
  temperature: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(2))),
  topK: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  topP: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  minP: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  repeatPenalty: v.optional(v.pipe(v.number(), v.minValue(1), v.maxValue(10))),
  seed: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff))),
  stop: v.optional(v.pipe(v.array(Label(1024)), v.maxLength(16), v.readonly())),
  grammar: v.optional(v.variant('kind', [
    v.strictObject({ kind: v.literal('json-schema'), schema: v.unknown() }),
    v.strictObject({ kind: v.literal('gbnf'), text: Label(64 * 1024) }),
  ])),
  slot: v.optional(Label(256)),
  /** Generate with tools (llm/tool-generation.ts) on the worker, which holds the tokenizer the phases need. */
  tools: v.optional(v.strictObject({
    tools: v.pipe(v.array(v.strictObject({ name: Label(256), description: Label(64 * 1024), parameters: v.record(v.string(), v.unknown()) })), v.maxLength(128), v.readonly()),
    choice: v.optional(v.union([v.picklist(['auto', 'required', 'none']), v.strictObject({ name: Label(256) })])),
  })),
});
export type WireGenerateRequest = v.InferOutput<typeof WireGenerateRequestSchema>;

const CallIdSchema = v.pipe(v.number(), v.integer(), v.minValue(1));
const StatsSchema = v.strictObject({
  promptTokens: Rate, cachedTokens: Rate, completionTokens: Rate, prefillMs: Rate, decodeMs: Rate, ttftMs: Rate, prefillTps: Rate, decodeTps: Rate,
});
const GenerateEventSchema = v.variant('type', [
  v.strictObject({ type: v.literal('token'), id: v.nullable(v.pipe(v.number(), v.integer())), text: Label(64 * 1024) }),
  v.strictObject({
    type: v.literal('done'),
    finishReason: v.picklist(['stop', 'length', 'cancelled']),
    text: Label(16 << 20),
    tokens: v.pipe(v.array(v.pipe(v.number(), v.integer())), v.maxLength(1 << 24), v.readonly()),
    stats: StatsSchema,
  }),
]);

const ErrorSchema = v.strictObject({ code: v.pipe(v.string(), v.regex(/^[a-z0-9-]+\/[a-z0-9-]+$/)), message: Label(4096) });

export const WorkerToRelaySchema = v.variant('type', [
  /**
   * `publicKey`: what run keys are sealed to. `space`: a device node's membership, proven over the connection's
   * challenge (required of a device node, which has no worker token; never sent by a cloud worker).
   */
  v.strictObject({ type: v.literal('hello'), protocol: v.pipe(v.number(), v.integer()), profile: WorkerProfileSchema, publicKey: WorkerPublicKeySchema, space: v.optional(SpaceMembershipSchema) }),
  v.strictObject({ type: v.literal('event'), run: RunIdSchema, event: SealedRunEventSchema }),
  v.strictObject({ type: v.literal('finished'), run: RunIdSchema, status: RunStatusSchema, error: v.optional(ErrorSchema) }),
  v.strictObject({ type: v.literal('heartbeat') }),
  /** What it holds now (replacing what it said before): sent before a run's `finished`, so a reader of the end sees it. */
  v.strictObject({ type: v.literal('prefixes'), keys: WirePrefixesSchema }),
  v.strictObject({ type: v.literal('generation'), call: CallIdSchema, event: GenerateEventSchema }),
  v.strictObject({ type: v.literal('generation-failed'), call: CallIdSchema, error: ErrorSchema }),
  v.strictObject({ type: v.literal('verified'), channel: CallIdSchema, message: VerifierToDeviceSchema }),
]);
export type WorkerToRelay = v.InferOutput<typeof WorkerToRelaySchema>;

export const RelayToWorkerSchema = v.variant('type', [
  /** Sent first on every connection; a device node signs it to prove membership of its space. */
  v.strictObject({ type: v.literal('challenge'), nonce: SpaceNonceSchema }),
  v.strictObject({ type: v.literal('welcome'), worker: WorkerIdSchema, heartbeatMs: v.pipe(v.number(), v.integer(), v.minValue(100)) }),
  /** `request.input` is already what this attempt must run: the original input, or `resume` after a failover. */
  v.strictObject({ type: v.literal('assign'), run: RunIdSchema, attempt: v.pipe(v.number(), v.integer(), v.minValue(1)), request: AssignedRunSchema }),
  v.strictObject({ type: v.literal('stop'), run: RunIdSchema }),
  v.strictObject({ type: v.literal('refused'), error: ErrorSchema }),
  v.strictObject({ type: v.literal('generate'), call: CallIdSchema, request: WireGenerateRequestSchema }),
  v.strictObject({ type: v.literal('cancel'), call: CallIdSchema }),
  /** A device's message for a session the relay routed to this worker; the channel stands for the device's socket. */
  v.strictObject({ type: v.literal('verify'), channel: CallIdSchema, message: DeviceToVerifierSchema }),
  /** The device's socket closed (or the relay gave up on the channel): its sessions are released. */
  v.strictObject({ type: v.literal('verify-end'), channel: CallIdSchema }),
]);
export type RelayToWorker = v.InferOutput<typeof RelayToWorkerSchema>;

/**
 * The attached workers, as GET workerPaths.list answers: the cloud workers, and the device nodes of the space named
 * in the request's SPACE_HEADER (nobody else's). `kind` says which.
 */
export const WorkerListSchema = v.strictObject({
  workers: v.array(v.strictObject({
    id: WorkerIdSchema,
    kind: v.picklist(['cloud', 'device']),
    embedded: v.boolean(),
    runs: v.pipe(v.number(), v.integer(), v.minValue(0)),
    profile: WorkerProfileSchema,
    /** What a run's session key is sealed to, for this worker to run it. */
    publicKey: WorkerPublicKeySchema,
    /** The keyed prefixes it last reported; absent: none. */
    prefixes: v.optional(WirePrefixesSchema),
  })),
});
export type WorkerList = v.InferOutput<typeof WorkerListSchema>;

/**
 * Whether a run placed `where` may run on a worker: see RunPlacementSchema. The relay dispatches by it, and a run's
 * starter seals the key to exactly the workers it allows.
 */
export function mayRunOn(where: RunPlacement | undefined, worker: { id: string; kind: 'cloud' | 'device'; space?: string | undefined }): boolean {
  if (where?.node !== undefined && where.node !== worker.id) return false;
  if (worker.kind === 'device') return where?.space !== undefined && (worker.space === undefined || where.space === worker.space);
  return where?.cloud !== false || where.node === worker.id;
}

/** The request header that names a space (its id, never the secret) to list its device nodes too. */
export const SPACE_HEADER = 'x-ferry-space';

/**
 * The header a worker's publishes carry: `<run id>/<attempt>`. The relay takes them only while that attempt is the
 * run's current one, so a worker it gave up on cannot land a checkpoint after the run moved on.
 */
export const ATTEMPT_HEADER = 'x-ferry-attempt';

export function attemptHeader(run: string, attempt: number): string {
  return `${run}/${attempt}`;
}

/** `<run id>/<attempt>` read back; undefined when malformed. */
export function parseAttemptHeader(value: string): { run: string; attempt: number } | undefined {
  const m = /^([0-9a-f]{32})\/([1-9][0-9]{0,8})$/.exec(value);
  return m ? { run: m[1]!, attempt: Number(m[2]) } : undefined;
}

/**
 * How many device nodes one space may have attached at once, the relay in all, and one client address (proven
 * members count; a stranger cannot prove membership of anyone's space); and how many connections one address may
 * hold that have not yet proven anything (they are closed after HELLO_TIMEOUT_MS).
 */
export const SPACE_LIMITS = { nodesPerSpace: 16, deviceNodes: 1024, nodesPerAddress: 32, unprovenPerAddress: 8 } as const;

/** WebSocket close codes the relay uses with workers (4000–4999 are the application's). */
export const WORKER_CLOSE = { refused: 4001, heartbeatMissed: 4002, protocolError: 1008 } as const;
