/**
 * The persisted session objects and their one validator each. Every decode (IndexedDB, files, sync, the relay)
 * goes through `decodeObject`, which validates the shape and insists the bytes are canonical, so an id always
 * names exactly one value.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import type { ObjectId } from '../store/index.ts';
import { bytesEqual, decodeMsgpack, encodeCanonical } from './canonical.ts';

export const FORMAT_VERSION = 1;
export const PAGE_SIZE = 64 * 1024;
/** The longest session title (a title travels with an exported or shared session; the list shows it). */
export const MAX_SESSION_TITLE = 120;
/** A session title as it travels in an export or a share: trimmed, not empty, bounded. */
export const SessionTitleSchema = v.pipe(v.string(), v.trim(), v.minLength(1), v.maxLength(MAX_SESSION_TITLE));
const MAX_TEXT = 4 << 20;

const id = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const text = v.pipe(v.string(), v.maxLength(MAX_TEXT));
// At most 48 characters, so a branch name can never be mistaken for a 64-hex checkpoint id.
const name = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$/));
/** Component state names may carry the runtime's memory keys ("agent/0:memory"). */
const componentName = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$/));
const label = v.pipe(v.string(), v.maxLength(256));
const time = v.pipe(v.number(), v.finite(), v.minValue(0));
const count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

const EngineRef = v.object({ id: label, kind: v.picklist(['webgpu', 'wasm-cpu', 'native', 'remote', 'scripted']), model: label });

const isTokenId = (t: number): boolean => Number.isInteger(t) && t >= 0 && t <= 0xffffffff;
/** Token ids, checked in one pass: an action pipe per element cost ~20 times as much, most of a long reply's decode. */
const tokenIds = v.pipe(v.array(v.number()), v.maxLength(1 << 20), v.check((ids) => ids.every(isTokenId), 'Token ids must be integers from 0 to 4294967295.'));

const EventSchema = v.variant('type', [
  v.object({ type: v.literal('user'), text, at: time }),
  v.object({
    type: v.literal('generation'),
    tokens: tokenIds,
    text,
    engine: EngineRef,
    timings: v.object({ promptMs: time, generateMs: time }),
    finish: v.picklist(['stop', 'length', 'abort', 'tool-call']),
    /** It continues the generation cut just before it (a move, or a resume after a stop): one reply, in pieces. */
    continues: v.optional(v.literal(true)),
    at: time,
  }),
  v.object({ type: v.literal('tool-call'), callId: label, tool: label, args: text, at: time }),
  v.object({ type: v.literal('tool-result'), callId: label, ok: v.boolean(), output: text, at: time }),
  // What the agent says to the user (it may differ from any one generation: a checked answer, an assembled draft).
  v.object({ type: v.literal('reply'), text, at: time }),
  v.object({ type: v.literal('placement'), from: label, to: label, reason: label, at: time }),
  v.object({ type: v.literal('fork'), from: id, fromBranch: name, branch: name, at: time }),
  // From here on the model no longer sees the conversation's first `turns` turns (they stay in the session): it
  // outgrew the context. Builds from before this event refuse a checkpoint holding it, as they do any unknown event.
  v.object({ type: v.literal('compaction'), turns: v.pipe(count, v.minValue(1)), at: time }),
]);

const LlmSettingsSchema = v.object({
  model: label,
  tokenizerId: label,
  sampling: v.object({
    temperature: v.pipe(v.number(), v.finite(), v.minValue(0)),
    topP: v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(1)),
    topK: count,
    seed: count,
    maxTokens: count,
    // Recorded only where set (checkpoints from before them read as without).
    minP: v.optional(v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(1))),
    repeatPenalty: v.optional(v.pipe(v.number(), v.finite(), v.minValue(0))),
  }),
});

const CountersSchema = v.object({ steps: count, tokens: count, costMicros: count, timeMs: time });

const CheckpointSchema = v.object({
  k: v.literal('checkpoint'),
  v: v.literal(FORMAT_VERSION),
  parent: v.nullable(id),
  events: v.pipe(v.array(EventSchema), v.maxLength(10_000)),
  components: v.pipe(v.record(componentName, id), v.check((r) => Object.keys(r).length <= 256, 'at most 256 components')),
  llm: LlmSettingsSchema,
  counters: CountersSchema,
  at: time,
});

const ChunkListSchema = v.pipe(
  v.object({
    k: v.literal('chunks'),
    v: v.literal(FORMAT_VERSION),
    size: v.pipe(count, v.maxValue(PAGE_SIZE * 65_536)),
    pageSize: v.literal(PAGE_SIZE),
    pages: v.pipe(v.array(v.nullable(id)), v.maxLength(65_536)),
  }),
  v.check((c) => c.pages.length === Math.ceil(c.size / PAGE_SIZE), 'pages must cover size exactly'),
);

const HeadSchema = v.object({ k: v.literal('head'), v: v.literal(FORMAT_VERSION), branch: name });

export type SessionEvent = v.InferOutput<typeof EventSchema>;
export type LlmSettings = v.InferOutput<typeof LlmSettingsSchema>;
export type Counters = v.InferOutput<typeof CountersSchema>;
export type Checkpoint = v.InferOutput<typeof CheckpointSchema>;
export type ChunkList = v.InferOutput<typeof ChunkListSchema>;
export type Head = v.InferOutput<typeof HeadSchema>;
export type EngineRef = v.InferOutput<typeof EngineRef>;

/** The kinds of object a session is made of. A page is raw bytes; the others are canonical MessagePack. */
export type ObjectKind = 'checkpoint' | 'chunks' | 'page' | 'head';

interface KindMap {
  checkpoint: Checkpoint;
  chunks: ChunkList;
  head: Head;
}

const schemas: { [K in keyof KindMap]: v.GenericSchema<unknown, KindMap[K]> } = { checkpoint: CheckpointSchema, chunks: ChunkListSchema, head: HeadSchema };

export function isBranchName(value: unknown): value is string {
  return v.is(name, value);
}

export function isComponentName(value: unknown): value is string {
  return v.is(componentName, value);
}

/** Validates an unknown value as a persisted object of `kind`: the one restore function per type. */
export function restoreObject<K extends keyof KindMap>(kind: K, value: unknown): KindMap[K] {
  const schema: v.GenericSchema<unknown, KindMap[K]> = schemas[kind];
  const result = v.safeParse(schema, value);
  if (!result.success) {
    const issue = result.issues[0];
    const where = issue ? v.getDotPath(issue) ?? '(root)' : '(root)';
    throw new FerryError('snapshot/bad-object', `A stored ${kind} is malformed at ${where}: ${issue?.message ?? 'invalid'}. The data is damaged or from an incompatible version of Ferry.`, {
      details: { kind, path: where },
    });
  }
  return result.output;
}

export function encodeObject<K extends keyof KindMap>(kind: K, value: KindMap[K]): Uint8Array {
  return encodeCanonical(restoreObject(kind, value));
}

/** Decodes, validates, and checks the bytes are the canonical encoding of what they decode to. */
export function decodeObject<K extends keyof KindMap>(kind: K, bytes: Uint8Array): KindMap[K] {
  const value = restoreObject(kind, decodeMsgpack(bytes, 'snapshot/bad-object', `A stored ${kind}`));
  if (!bytesEqual(encodeCanonical(value), bytes)) {
    throw new FerryError('snapshot/bad-object', `A stored ${kind} is not in canonical form (extra fields, unsorted keys or padded numbers); it was not written by Ferry.`);
  }
  return value;
}

/** The ids an object refers to, with the kind each must have: the edges of the session graph. */
export function childrenOf(kind: ObjectKind, bytes: Uint8Array): { id: ObjectId; kind: ObjectKind }[] {
  switch (kind) {
    case 'page':
      checkPage(bytes);
      return [];
    case 'head':
      decodeObject('head', bytes);
      return [];
    case 'chunks':
      return decodeObject('chunks', bytes).pages.filter((p): p is ObjectId => p !== null).map((id) => ({ id, kind: 'page' as const }));
    case 'checkpoint': {
      const cp = decodeObject('checkpoint', bytes);
      const out: { id: ObjectId; kind: ObjectKind }[] = Object.values(cp.components).map((id) => ({ id, kind: 'chunks' as const }));
      if (cp.parent !== null) out.push({ id: cp.parent, kind: 'checkpoint' });
      return out;
    }
  }
}

export function checkPage(bytes: Uint8Array): void {
  if (bytes.length === 0 || bytes.length > PAGE_SIZE) {
    throw new FerryError('snapshot/bad-object', `A stored page is ${bytes.length} bytes; pages are 1 to ${PAGE_SIZE} bytes.`);
  }
}
