/**
 * The relay's HTTP wire protocol (DESIGN §6): paths, ids, limits, request and response bodies, and their valibot
 * schemas. The server validates every body against these; the clients (browser, cloud worker) validate every
 * response against the same ones. One file so a change to the protocol is one change.
 */
import * as v from 'valibot';
import { SpaceIdSchema } from './spaces.ts';
import { SealedKeySchema, WorkerPublicKeySchema } from './worker-keys.ts';

/**
 * Bumped on any incompatible change; it is the path prefix, so old and new clients never misread each other.
 * 2: a run's session key is sealed to its workers, its input and events are sealed with the session key, and its
 * event stream takes the run's read capability.
 */
export const PROTOCOL_VERSION = 2;
export const API_PREFIX = `/api/v${PROTOCOL_VERSION}`;

export const paths = {
  missing: `${API_PREFIX}/objects/missing`,
  /** POST a framed batch of sealed objects (frames.ts). */
  batch: `${API_PREFIX}/objects/batch`,
  /** POST { ids } → the framed objects the relay holds among them, up to `maxBatchBytes`. */
  fetch: `${API_PREFIX}/objects/fetch`,
  object: (id: string) => `${API_PREFIX}/objects/${id}`,
  snapshots: `${API_PREFIX}/snapshots`,
  snapshot: (id: string) => `${API_PREFIX}/snapshots/${id}`,
  runs: `${API_PREFIX}/runs`,
  run: (id: string) => `${API_PREFIX}/runs/${id}`,
  /** WebSocket: every event of the run from `?from=<seq>` (default 0), then live ones until it ends. */
  runEvents: (id: string) => `${API_PREFIX}/runs/${id}/events`,
  runStop: (id: string) => `${API_PREFIX}/runs/${id}/stop`,
} as const;

/** Explicit limits; the relay may be configured lower, never higher than a client expects to need. */
export const LIMITS = {
  /** Ids per "which are missing" request: a page of a large session's closure. */
  maxIdsPerQuery: 1024,
  /** JSON bodies (id lists, snapshot records). 1024 quoted ids ≈ 68 KB. */
  maxJsonBody: 128 * 1024,
  /** Default largest sealed object: component pages are 64 KiB, a checkpoint with a long transcript more. */
  maxObjectBytes: 16 * 1024 * 1024,
  /** One framed upload or download: big enough to amortise a round trip, small enough to buffer. */
  maxBatchBytes: 32 * 1024 * 1024,
  maxObjectsPerBatch: 1024,
} as const;

/**
 * A relay object id: the HMAC of a local object id under the session key (snapshot/keys.ts), 64 lower-case hex.
 * The relay cannot recompute it (it has no key); the sealed object is bound to it by AES-GCM's additional data, so
 * a reader with the key detects any object stored under the wrong id.
 */
export const ObjectIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex characters'));

/** A snapshot's capability id: 160 random bits as 40 lower-case hex characters. Knowing it is the right to read. */
export const SNAPSHOT_ID_BYTES = 20;
export const SnapshotIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{40}$/, 'must be 40 lower-case hex characters'));

/** A write token: 256 random bits, base64url. Sent as `Authorization: Bearer <token>`; the relay keeps only its hash. */
export const WRITE_TOKEN_BYTES = 32;
export const WriteTokenSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 43 base64url characters'));

export const MissingRequestSchema = v.strictObject({
  ids: v.pipe(v.array(ObjectIdSchema), v.maxLength(LIMITS.maxIdsPerQuery, `at most ${LIMITS.maxIdsPerQuery} ids per request`)),
});
export type MissingRequest = v.InferOutput<typeof MissingRequestSchema>;

/** Which objects to download in one framed response. */
export const FetchRequestSchema = MissingRequestSchema;
export type FetchRequest = MissingRequest;

/** The want bitmap: bit i set when the relay lacks ids[i] (base64url, LSB first, ceil(n/8) bytes). */
export const MissingResponseSchema = v.strictObject({ missing: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]*$/), v.maxLength(Math.ceil(LIMITS.maxIdsPerQuery / 6) + 2)) });
export type MissingResponse = v.InferOutput<typeof MissingResponseSchema>;

export const PutObjectResponseSchema = v.strictObject({
  id: ObjectIdSchema,
  /** False when the relay already held it (objects are immutable: the first upload wins). */
  created: v.boolean(),
  size: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
export type PutObjectResponse = v.InferOutput<typeof PutObjectResponseSchema>;

export const BatchPutResponseSchema = v.strictObject({
  received: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** How many were new to the relay. */
  created: v.pipe(v.number(), v.integer(), v.minValue(0)),
  bytes: v.pipe(v.number(), v.integer(), v.minValue(0)),
});
export type BatchPutResponse = v.InferOutput<typeof BatchPutResponseSchema>;

/** Publish: the snapshot's sealed manifest object, which must already be uploaded. */
export const CreateSnapshotRequestSchema = v.strictObject({ manifest: ObjectIdSchema });
export type CreateSnapshotRequest = v.InferOutput<typeof CreateSnapshotRequestSchema>;

/** Update: move the snapshot to a new manifest, compare-and-swap on the one the writer last saw. */
export const UpdateSnapshotRequestSchema = v.strictObject({ manifest: ObjectIdSchema, expect: ObjectIdSchema });
export type UpdateSnapshotRequest = v.InferOutput<typeof UpdateSnapshotRequestSchema>;

const Millis = v.pipe(v.number(), v.integer(), v.minValue(0));

export const SnapshotRecordSchema = v.strictObject({
  id: SnapshotIdSchema,
  manifest: ObjectIdSchema,
  /** 1 at publish, +1 per update. */
  version: v.pipe(v.number(), v.integer(), v.minValue(1)),
  createdAt: Millis,
  updatedAt: Millis,
});
export type SnapshotRecord = v.InferOutput<typeof SnapshotRecordSchema>;

export const CreateSnapshotResponseSchema = v.strictObject({
  snapshot: SnapshotRecordSchema,
  /** Shown once: the relay stores only its SHA-256. */
  writeToken: WriteTokenSchema,
});
export type CreateSnapshotResponse = v.InferOutput<typeof CreateSnapshotResponseSchema>;

/** Every error the relay sends: a stable code ("area/what") and a message a person can act on. */
export const ErrorBodySchema = v.object({
  error: v.object({
    code: v.pipe(v.string(), v.regex(/^[a-z0-9-]+\/[a-z0-9-]+$/)),
    message: v.string(),
  }),
});
export type ErrorBody = v.InferOutput<typeof ErrorBodySchema>;

/** A run's id: 128 random bits, 32 lower-case hex characters. */
export const RunIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex characters'));

/** A worker or device node, as the relay named it when it attached. */
export const WorkerIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{16}$/, 'must be 16 lower-case hex characters'));

/**
 * Where a run's forked children may go (context parallelism): the space's devices offering themselves, the relay's
 * cloud workers that charge nothing, and, when `cloud` is true, those that charge, while all the children stay within
 * `maxCostUsd` there (USD per step; absent: no limit).
 */
export const ChildrenScopeSchema = v.strictObject({
  space: SpaceIdSchema,
  cloud: v.boolean(),
  maxCostUsd: v.optional(v.pipe(v.number(), v.finite(), v.minValue(0))),
});
export type ChildrenScope = v.InferOutput<typeof ChildrenScopeSchema>;

/**
 * Where a run may go. Without it: any cloud worker. `space`: also that space's device nodes, and cloud workers
 * unless `cloud` is false (privacy "my devices"). `node`: only that worker or node — a run pinned there fails
 * with relay/node-left when it goes, instead of moving on (its caller decides where it goes next). `children`:
 * where the run's forked children go; absent, `space` (and `cloud`) when given, else they run on the run's worker.
 */
export const RunPlacementSchema = v.strictObject({
  space: v.optional(SpaceIdSchema),
  node: v.optional(WorkerIdSchema),
  cloud: v.optional(v.boolean()),
  children: v.optional(ChildrenScopeSchema),
});
export type RunPlacement = v.InferOutput<typeof RunPlacementSchema>;

/** The longest reply a run may be asked for: a context's worth on the largest models Ferry runs. */
export const MAX_RUN_REPLY_TOKENS = 32_768;

/** Most workers one run's key may be sealed to (every worker its placement allows, when it starts). */
export const MAX_RUN_KEYS = 64;

const Base64Url = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]*$/, 'must be base64url'));

/** Sealed bytes (snapshot/messages.ts) as base64url, at most `max` of them. */
const SealedBox = (max: number) => v.pipe(Base64Url, v.maxLength(Math.ceil((max * 4) / 3) + 4));

/** A prompt as an engine takes it (llm/engine.ts Prompt): token ids, chat messages or rendered text. */
export const WirePromptSchema = v.union([
  v.strictObject({ tokens: v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.maxLength(1 << 20), v.readonly()) }),
  v.strictObject({
    messages: v.pipe(
      v.array(v.strictObject({ role: v.picklist(['system', 'user', 'assistant', 'tool']), content: v.pipe(v.string(), v.maxLength(4 << 20)), name: v.optional(v.pipe(v.string(), v.maxLength(256))) })),
      v.minLength(1),
      v.maxLength(4096),
      v.readonly(),
    ),
  }),
  v.strictObject({ text: v.pipe(v.string(), v.maxLength(4 << 20)) }),
]);

/** Most ids a `continue` input carries: a cut reply's; a longer one resumes without them. */
export const MAX_CONTINUE_TOKENS = 16_384;

/** What a run does first, as its starter writes it, before it is sealed with the session key. */
export const RunInputSchema = v.variant('type', [
  v.strictObject({ type: v.literal('user'), text: v.pipe(v.string(), v.minLength(1), v.maxLength(64 * 1024)) }),
  v.strictObject({ type: v.literal('start'), task: v.pipe(v.string(), v.minLength(1), v.maxLength(64 * 1024)) }),
  /**
   * Make ready for a move that is coming (host/move-ahead.ts): fetch the session, open it, and prefill `prompt` — the
   * generation streaming where the session is now — then end, keeping it all for the resume that follows.
   */
  v.strictObject({ type: v.literal('warm'), prompt: WirePromptSchema }),
  /**
   * Resume, after a warm: the reply the move cut goes on after `tokens` (the ids generated since the warm, by an
   * engine of tokenizer `tokenizer`), which the node that was warmed evaluates at once, while it fetches the cut step
   * (host/move-ahead.ts).
   */
  v.strictObject({
    type: v.literal('continue'),
    tokenizer: v.pipe(v.string(), v.maxLength(256)),
    tokens: v.pipe(v.array(v.pipe(v.number(), v.integer(), v.minValue(0))), v.maxLength(MAX_CONTINUE_TOKENS)),
  }),
]);
export type RunInput = v.InferOutput<typeof RunInputSchema>;

/** A run's input on the wire: `resume` (continue what the session holds), or the input sealed with the session key. */
export const WireRunInputSchema = v.variant('type', [
  v.strictObject({ type: v.literal('resume') }),
  v.strictObject({ type: v.literal('sealed'), box: SealedBox(256 * 1024) }),
]);
export type WireRunInput = v.InferOutput<typeof WireRunInputSchema>;

/** The SHA-256 of a run's read capability, base64url: what the relay keeps to check a follower's capability. */
export const ReadVerifierSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be a SHA-256 as 43 base64url characters'));

/**
 * Resume snapshot S on a worker. The session key travels sealed to each worker the run may go to (`keys`, by the
 * public key each announced: worker-keys.ts), so only the worker that runs it can open it — the relay routes sealed
 * bytes. The input is sealed with the session key; `readVerifier` is the hash of the run's read capability, which
 * whoever holds the session key derives (runs.ts). The write token lets the worker publish every checkpoint to S.
 */
export const StartRunRequestSchema = v.strictObject({
  snapshot: SnapshotIdSchema,
  writeToken: WriteTokenSchema,
  keys: v.pipe(v.record(WorkerPublicKeySchema, SealedKeySchema), v.check((r) => Object.keys(r).length <= MAX_RUN_KEYS, `at most ${MAX_RUN_KEYS} sealed keys`)),
  input: WireRunInputSchema,
  readVerifier: ReadVerifierSchema,
  where: v.optional(RunPlacementSchema),
  /**
   * The longest reply of this run, in tokens: the reply length the person set where the run was started (on a
   * device, its Settings). Absent: the session's own, as its head checkpoint recorded it.
   */
  maxTokens: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_RUN_REPLY_TOKENS))),
});
export type StartRunRequest = v.InferOutput<typeof StartRunRequestSchema>;

/** A run as the relay hands it to the worker it picked: the session key sealed to that worker alone. */
export const AssignedRunSchema = v.strictObject({
  snapshot: SnapshotIdSchema,
  writeToken: WriteTokenSchema,
  key: SealedKeySchema,
  input: WireRunInputSchema,
  where: v.optional(RunPlacementSchema),
  maxTokens: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_RUN_REPLY_TOKENS))),
});
export type AssignedRun = v.InferOutput<typeof AssignedRunSchema>;

export const RunStatusSchema = v.picklist(['running', 'idle', 'done', 'stopped', 'failed', 'interrupted']);
export type RunStatus = v.InferOutput<typeof RunStatusSchema>;

export const RunRecordSchema = v.strictObject({
  id: RunIdSchema,
  snapshot: SnapshotIdSchema,
  status: RunStatusSchema,
  /** Events recorded so far (the next event's seq). */
  events: v.pipe(v.number(), v.integer(), v.minValue(0)),
  error: v.nullable(v.object({ code: v.string(), message: v.string() })),
  createdAt: Millis,
  updatedAt: Millis,
});
export type RunRecord = v.InferOutput<typeof RunRecordSchema>;

/** A run's event from its worker: sealed with the session key, bound to the run (runs.ts). The relay reads none. */
export const SealedRunEventSchema = v.strictObject({ type: v.literal('sealed'), box: SealedBox(4 << 20) });
export type SealedRunEvent = v.InferOutput<typeof SealedRunEventSchema>;

/** The relay's own events on a run's stream: metadata only (which worker, and why a run failed). */
export const RelayRunEventSchema = v.variant('type', [
  v.strictObject({ type: v.literal('worker-lost'), worker: v.string(), reason: v.pipe(v.string(), v.maxLength(1024)) }),
  v.strictObject({ type: v.literal('reassigned'), worker: v.string(), name: v.pipe(v.string(), v.maxLength(256)), attempt: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  v.strictObject({ type: v.literal('error'), code: v.pipe(v.string(), v.regex(/^[a-z0-9-]+\/[a-z0-9-]+$/)), message: v.pipe(v.string(), v.maxLength(4096)) }),
]);
export type RelayRunEvent = v.InferOutput<typeof RelayRunEventSchema>;

/**
 * One message on a run's event stream, as the relay sends it: the worker's events sealed (a follower with the
 * session key opens them into the runtime's events — token, generation, tool-call, reply, checkpoint, published, …)
 * and the relay's own metadata events.
 */
export const RunMessageSchema = v.strictObject({
  seq: v.pipe(v.number(), v.integer(), v.minValue(0)),
  event: v.union([SealedRunEventSchema, RelayRunEventSchema]),
});
export type RunMessage = v.InferOutput<typeof RunMessageSchema>;

/**
 * The event stream's WebSocket subprotocols: this one, and the run's read capability as `ferry-cap.<token>` (a
 * header, so the capability stays out of URLs and logs; browsers cannot set others on a WebSocket).
 */
export const RUN_EVENTS_PROTOCOL = 'ferry-run-events.2';
export const CAPABILITY_PROTOCOL_PREFIX = 'ferry-cap.';

/**
 * Publishing and opening a snapshot in one request each (issue 6). A publish sends the objects the relay lacks and
 * the sealed manifest in one framed body and moves the snapshot in the same atomic commit on the relay; the
 * structure objects (everything but component pages) come first, and `structure` says how many, so the relay can
 * hand them to a reader together with the record ("contents"), and after them the request's pages, within a budget:
 * a reader then needs one round trip for the session's structure and its recent pages, and one more for any pages it
 * still lacks, however deep the session is. The relay learns nothing it did not already see in the upload.
 */
export const snapshotPaths = {
  /** POST a framed batch with ?manifest=<id>&structure=<n> → CreateSnapshotResponse (a new snapshot). */
  publish: `${API_PREFIX}/snapshots/publish`,
  /** POST a framed batch with ?manifest=<id>&expect=<id>&structure=<n> and the write token → SnapshotRecord. */
  publishTo: (id: string) => `${API_PREFIX}/snapshots/${id}/publish`,
  /** GET ?since=<version> → SnapshotContents: the record, the sealed manifest, the structure (and pages) published after `since`. */
  contents: (id: string) => `${API_PREFIX}/snapshots/${id}/contents`,
} as const;

export const CONTENTS_LIMITS = {
  /** Structure bytes in one contents answer; a reader fetches anything beyond by id. */
  maxBytes: 8 * 1024 * 1024,
  maxObjects: 16 * 1024,
} as const;

const QueryCount = v.pipe(v.string(), v.regex(/^\d{1,9}$/, 'must be a non-negative integer'), v.transform(Number));

export const PublishQuerySchema = v.strictObject({
  manifest: ObjectIdSchema,
  /** How many of the batch's leading objects are the session's structure. */
  structure: v.optional(QueryCount),
  /** Updates only: the manifest the snapshot must still point at (compare-and-swap). */
  expect: v.optional(ObjectIdSchema),
});
export type PublishQuery = v.InferOutput<typeof PublishQuerySchema>;

export const ContentsQuerySchema = v.strictObject({
  /** The version the reader already holds: structure published after it comes along. Absent: the manifest only. */
  since: v.optional(QueryCount),
});

export const SnapshotContentsSchema = v.strictObject({
  snapshot: SnapshotRecordSchema,
  /** The sealed manifest the record points at. */
  manifest: Base64Url,
  /** Sealed structure objects, then pages, as [remote id, base64url bytes]. */
  objects: v.pipe(v.array(v.strictTuple([ObjectIdSchema, Base64Url])), v.maxLength(CONTENTS_LIMITS.maxObjects)),
});
export type SnapshotContents = v.InferOutput<typeof SnapshotContentsSchema>;
