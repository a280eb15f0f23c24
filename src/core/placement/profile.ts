/**
 * Node profiles (DESIGN.md §7): what the placement policy knows about each node that could run a session step.
 * Speeds are measured per model by a short run of the real engine and go stale; everything here is plain data so a
 * profile crosses postMessage, the relay and disk unchanged, and is validated by `restoreNodeProfile` wherever it
 * arrives from outside.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';

/** Where a node is, seen from the session's owner: the device in hand, another paired device, or a cloud worker. */
export type NodeKind = 'this-device' | 'my-device' | 'cloud';

/** Whose hardware it is: the user's own (this device, a paired device, a self-hosted worker) or a third party's. */
export type NodeTrust = 'own' | 'third-party';

/** Measured engine speed for one model on one node. */
export interface ModelSpeed {
  /** Prompt tokens per second (prefill). */
  readonly prefillTps: number;
  /** Generated tokens per second (decode). */
  readonly decodeTps: number;
  /** When it was measured, ms since the epoch. */
  readonly measuredAt: number;
}

/** What a node charges for tokens, USD per 1,000; 0 on the user's own hardware (energy is not priced). */
export interface Price {
  readonly promptPer1k: number;
  readonly outputPer1k: number;
}

/**
 * Whether a worker charges for its tokens: a third party's. One that does not is the relay owner's own hardware
 * (`ferry start` on the user's machine, a `ferry worker` they attached), which "my devices" may use like a device.
 */
export function chargesForTokens(price: Price | undefined): boolean {
  return price !== undefined && (price.promptPer1k > 0 || price.outputPer1k > 0);
}

/** What reading `promptTokens` and generating `outputTokens` cost at `price`, USD: every prompt token is billed, as paid APIs bill them. */
export function tokensCostUsd(price: Price, promptTokens: number, outputTokens: number): number {
  return (promptTokens / 1000) * price.promptPer1k + (outputTokens / 1000) * price.outputPer1k;
}

export interface NodeProfile {
  readonly id: string;
  /** What a person calls it in a reason ("Pixel 8", "cloud-a100"); the id when absent. */
  readonly name?: string;
  readonly kind: NodeKind;
  readonly trust: NodeTrust;
  /** Per model id. A node without an entry for the step's model cannot run it. */
  readonly models: Readonly<Record<string, ModelSpeed>>;
  /** Memory available for weights + KV cache, bytes. */
  readonly memoryBytes: number;
  /** Absent on mains-powered nodes. `level` is 0..1. */
  readonly battery?: { readonly level: number; readonly charging: boolean };
  /** Round trip and bandwidth between this node and the relay. `this-device` reaches its own engine with no network. */
  readonly link: { readonly rttMs: number; readonly bandwidthBps: number };
  readonly price: Price;
  /** Expected wait before a run starts (queue at a shared worker), ms. */
  readonly queueWaitMs: number;
  /** Whether its engine can save and load KV state, so a KV cache can be shipped to or from it. */
  readonly kvState: boolean;
  /**
   * Keys of the token prefixes its KV cache holds (prefixBlockKeys, any session's): a fork, a rollback's branch or a
   * child whose prompt starts with one prefills only the rest there. Absent: none known.
   */
  readonly prefixes?: readonly string[];
  /** Its engine's tokenizer id: `prefixes` hash token ids in it, so only a step's in the same can match them. */
  readonly tokenizer?: string;
  /** It verifies drafts (the relay's own engine or an attached worker's, over /api/v2/verify): this device may run steps speculatively with it. */
  readonly verifies?: boolean;
}

/** The most prefix keys a profile may list (64 tokens each: 4M tokens of held prefixes). */
export const MAX_PREFIX_KEYS = 65_536;
export const PrefixKeysSchema = v.pipe(v.array(v.pipe(v.string(), v.regex(/^-?[0-9a-z]{1,8}\.-?[0-9a-z]{1,8}$/, 'must be a prefix key'))), v.maxLength(MAX_PREFIX_KEYS), v.readonly());

const finiteNonNegative = v.pipe(v.number(), v.finite(), v.minValue(0));
const positive = v.pipe(v.number(), v.finite(), v.gtValue(0));

export const ModelSpeedSchema = v.strictObject({
  prefillTps: positive,
  decodeTps: positive,
  measuredAt: finiteNonNegative,
});

export const NodeProfileSchema = v.pipe(
  v.strictObject({
    id: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
    name: v.optional(v.pipe(v.string(), v.maxLength(200))),
    kind: v.picklist(['this-device', 'my-device', 'cloud']),
    trust: v.picklist(['own', 'third-party']),
    models: v.record(v.pipe(v.string(), v.minLength(1)), ModelSpeedSchema),
    memoryBytes: finiteNonNegative,
    battery: v.optional(v.strictObject({ level: v.pipe(v.number(), v.minValue(0), v.maxValue(1)), charging: v.boolean() })),
    link: v.strictObject({ rttMs: finiteNonNegative, bandwidthBps: positive }),
    price: v.strictObject({ promptPer1k: finiteNonNegative, outputPer1k: finiteNonNegative }),
    queueWaitMs: finiteNonNegative,
    kvState: v.boolean(),
    prefixes: v.optional(PrefixKeysSchema),
    tokenizer: v.optional(v.pipe(v.string(), v.maxLength(256))),
    verifies: v.optional(v.boolean()),
  }),
  v.check((p) => p.kind !== 'this-device' || p.trust === 'own', 'this device is always trust "own"'),
);

/** Validates a profile from outside (relay, disk, a probe); throws `placement/bad-profile` naming the bad field. */
export function restoreNodeProfile(value: unknown): NodeProfile {
  const parsed = v.safeParse(NodeProfileSchema, value);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const where = issue?.path?.map((p) => String(p.key)).join('.');
  throw new FerryError('placement/bad-profile', `Node profile is invalid${where ? ` at "${where}"` : ''}: ${issue?.message ?? 'does not match the schema'}. Re-run the node's speed probe.`);
}

/** Ten minutes: a device's speed changes with thermal state and load; re-measure rather than trust an old figure. */
export const DEFAULT_PROFILE_MAX_AGE_MS = 10 * 60_000;

/** True when `node` has no speed for `model`, or its speed was measured longer than `maxAgeMs` before `now`. */
export function isProfileStale(node: NodeProfile, model: string, now: number, maxAgeMs = DEFAULT_PROFILE_MAX_AGE_MS): boolean {
  const speed = node.models[model];
  return speed === undefined || now - speed.measuredAt > maxAgeMs;
}

/** The nodes whose speed for `model` should be re-measured before (or while) deciding. */
export function staleNodes(nodes: readonly NodeProfile[], model: string, now: number, maxAgeMs = DEFAULT_PROFILE_MAX_AGE_MS): NodeProfile[] {
  return nodes.filter((n) => isProfileStale(n, model, now, maxAgeMs));
}

/** The profile with `model`'s speeds replaced by a fresh measurement (e.g. the rate seen during a generation). */
export function withMeasuredSpeed(node: NodeProfile, model: string, speed: Partial<ModelSpeed> & { measuredAt: number }): NodeProfile {
  const old = node.models[model];
  const next: ModelSpeed = {
    prefillTps: speed.prefillTps ?? old?.prefillTps ?? 1,
    decodeTps: speed.decodeTps ?? old?.decodeTps ?? 1,
    measuredAt: speed.measuredAt,
  };
  return { ...node, models: { ...node.models, [model]: next } };
}

export function nodeName(node: NodeProfile): string {
  return node.name ?? node.id;
}
