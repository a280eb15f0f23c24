/**
 * The facts placement decides a session's next step with, and that decision — one source for automatic placement
 * (auto-placement.ts) and for what "Where it runs" says will happen (ui/where-it-runs.ts), so the screen never tells
 * another story than the one the placer acts on.
 */
import { cloudPlacement, decide, expectedReplyTokens, RECENT_REPLIES, thisDeviceProfile, type Decision, type NodeProfile, type PlacementPrefs, type RunMode } from '../core/placement/index.ts';
import type { RunPlacement } from '../core/protocol/index.ts';
import { nextStepPrefix, type StepPrefix } from '../core/runtime/held-prefix.ts';
import type { Session } from '../core/session/index.ts';
import { measuredAcceptance } from './speculative-acceptance.ts';

/** The placement's id for this device. */
export const THIS_DEVICE = 'this-device';
/** A system prompt's worth of context besides what the agent generated (user and tool text go uncounted). */
const SYSTEM_PROMPT_TOKENS = 512;
/** The engines that run on this device: their generations measure its speed. */
const ENGINES_HERE = new Set(['wllama', 'wllama-webgpu', 'web-llm']);
/**
 * The acceptance placement expects, before any is measured here, when this device drafts with the very model the
 * relay verifies with: its greedy picks are the verifier's but where the two engines' arithmetic parts a near tie.
 */
const SAME_MODEL_ACCEPTANCE = 0.9;

export interface NextStep {
  /** The session's model id, as its checkpoints record it. */
  model: string;
  promptTokens: number;
  /** How long the next reply is expected to be (placement/reply-length.ts), and how many tokens a reply may take. */
  expectedOutputTokens: number;
  replyLimit: number;
  /** This device's decode rate for the model, from the newest generation an engine here recorded; null: none yet. */
  decodeTps: number | null;
  /** The session samples (temperature > 0): it cannot run speculatively. */
  sampled?: boolean;
  /** This device's measured acceptance of its drafts of the model by the model (speculative-acceptance.ts); null: none yet. */
  acceptance?: number | null;
  /**
   * The prefix of its prompt that its newest generation left in a KV cache, keyed with the session's key (as the
   * relay's workers list theirs) and named by tokenizer; absent: no key on this device, or none recorded.
   */
  prefix?: StepPrefix;
}

/**
 * The next step of `session` under this device's reply length and context size. `sessionKey`: the key the relay's
 * workers keyed this session's prefixes with (session-records.ts `prefixKey`), which keys its held prefix the same.
 */
export async function nextStep(session: Session, limits: { replyTokens: number; contextSize: number }, sessionKey?: Uint8Array): Promise<NextStep> {
  const [head, replies, prefix] = await Promise.all([session.head().then((id) => session.checkpoint(id)), session.recentReplyLengths(RECENT_REPLIES), heldPrefix(session, sessionKey)]);
  return {
    ...(prefix ? { prefix } : {}),
    model: head.llm.model,
    promptTokens: Math.min(limits.contextSize, SYSTEM_PROMPT_TOKENS + head.counters.tokens),
    expectedOutputTokens: expectedReplyTokens(replies, limits.replyTokens),
    replyLimit: limits.replyTokens,
    decodeTps: await measuredHere(session, head.llm.model),
    sampled: head.llm.sampling.temperature > 0,
    // This device drafts with the session's own model (the relay verifies with the same).
    acceptance: measuredAcceptance(head.llm.model, head.llm.model),
  };
}

/** The session's held prefix keyed with `sessionKey`; undefined where there is no key or no prefix recorded. */
async function heldPrefix(session: Session, sessionKey: Uint8Array | undefined): Promise<StepPrefix | undefined> {
  if (sessionKey === undefined) return undefined;
  try {
    return await nextStepPrefix(session, sessionKey);
  } catch {
    return undefined; // only a placement hint: without it the step is placed as before
  }
}

/** Checkpoints read back for a generation here: a long run of tool steps or cloud replies ends the search. */
const MEASURE_DEPTH = 64;

/** Tokens per second of the newest generation of `model` that ran on this device, on the current branch. */
async function measuredHere(session: Session, model: string): Promise<number | null> {
  let id: string | null = await session.head();
  for (let read = 0; id !== null && read < MEASURE_DEPTH; read++) {
    const checkpoint = await session.checkpoint(id);
    for (let i = checkpoint.events.length - 1; i >= 0; i--) {
      const e = checkpoint.events[i]!;
      if (e.type === 'generation' && ENGINES_HERE.has(e.engine.id) && e.engine.model === model && e.tokens.length > 1 && e.timings.generateMs > 0) return e.tokens.length / (e.timings.generateMs / 1000);
    }
    id = checkpoint.parent;
  }
  return null;
}

/** This device as a node: `model` at `decodeTps` (0: not measured, so it cannot be estimated for it). */
export function thisDeviceNode(model: string, decodeTps: number, extra: { battery?: { level: number; charging: boolean }; memoryBytes?: number } = {}): NodeProfile {
  return thisDeviceProfile({ id: THIS_DEVICE, name: 'this device', model, prefillTps: decodeTps * 10, decodeTps, measuredAt: Date.now(), kvState: false, ...extra });
}

/**
 * Where the next step runs: this device `here`, with the session's context in its cache, or a node of `fleet`, or
 * speculatively (drafted here with the session's model, verified by the relay's worker). `speculative`: the session
 * runs so now (verified by the fleet's verifying node), which the policy's hysteresis weighs as where it is.
 */
export function decideNextStep(step: Pick<NextStep, 'model' | 'promptTokens' | 'expectedOutputTokens' | 'sampled' | 'acceptance' | 'prefix'>, here: NodeProfile, fleet: readonly NodeProfile[], prefs: PlacementPrefs, speculative = false): Decision {
  const speculativeVerifier = speculative ? fleet.find((n) => n.verifies)?.id : undefined;
  const { nodes, prefixKeys } = withStepPrefix(step, fleet);
  const pending = { sessionId: 'live', model: step.model, promptTokens: step.promptTokens, expectedOutputTokens: step.expectedOutputTokens, cachedTokens: { [THIS_DEVICE]: step.promptTokens }, kvBytesPerToken: 0, sampled: step.sampled ?? false, speculative: { acceptance: step.acceptance ?? SAME_MODEL_ACCEPTANCE }, ...(prefixKeys ? { prefixKeys } : {}) };
  const [current, mode]: [string, RunMode] = speculativeVerifier ? [speculativeVerifier, 'speculative'] : [THIS_DEVICE, 'run'];
  return decide(pending, [here, ...nodes], prefs, current, mode);
}

/**
 * The fleet as the step's held prefix meets it, and the keys the policy counts it with: computed once per decision
 * (the mid-reply watch reuses it for every token). Held prefixes hash token ids: they count only on a node whose
 * tokenizer is the one the step's keys were made in; no key is passed where no node lists any.
 */
export function withStepPrefix(step: Pick<NextStep, 'prefix'>, fleet: readonly NodeProfile[]): { nodes: NodeProfile[]; prefixKeys?: string[] } {
  const tokenizer = step.prefix?.tokenizer;
  const nodes = fleet.map((n) => (n.prefixes && n.tokenizer !== tokenizer ? withoutPrefixes(n) : n));
  const prefixKeys = nodes.some((n) => n.prefixes) ? step.prefix?.keys : undefined;
  return { nodes, ...(prefixKeys ? { prefixKeys } : {}) };
}

/**
 * Where "Move to the cloud worker" sends session `sessionId` (fleet.ts cloudPlacement), its held prefix counted as
 * decideNextStep counts it: a cloud worker that holds it is the one pinned when the settings pin one.
 */
export function cloudMoveFor(sessionId: string, step: Pick<NextStep, 'model' | 'promptTokens' | 'expectedOutputTokens' | 'prefix'>, fleet: readonly NodeProfile[], prefs: PlacementPrefs): RunPlacement | undefined {
  const { nodes, prefixKeys } = withStepPrefix(step, fleet);
  return cloudPlacement({ sessionId, model: step.model, promptTokens: step.promptTokens, expectedOutputTokens: step.expectedOutputTokens, kvBytesPerToken: 0, ...(prefixKeys ? { prefixKeys } : {}) }, nodes, prefs);
}

function withoutPrefixes(node: NodeProfile): NodeProfile {
  const { prefixes: _, ...rest } = node;
  return rest;
}
