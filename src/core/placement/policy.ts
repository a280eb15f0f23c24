/**
 * The placement policy (DESIGN.md §7): for a pending step, estimate on every allowed node how long it would take
 * and what it would cost, pick by the user's objective under their constraints, keep the session where it is unless
 * moving clearly pays, and say why in words. Pure: the same inputs give the same Decision, so the product and the
 * simulator (bench/placement.ts) run this very code.
 */
import * as v from 'valibot';
import { FerryError, type ErrorCode } from '../errors.ts';
import { heldPrefixTokens } from '../llm/prefix-keys.ts';
import { NodeProfileSchema, PrefixKeysSchema, nodeName, restoreNodeProfile, tokensCostUsd, withMeasuredSpeed, type NodeProfile } from './profile.ts';
import { speculativePlan, verifiedDraftTokens, type SpeculativePlan, type SpeculativeStep } from './speculative.ts';

export type Objective = 'fastest' | 'cheapest' | 'balanced';
/** Where a session's data may go: only the device in hand, the user's own paired devices, or anywhere (cloud too). */
export type Privacy = 'this-device' | 'my-devices' | 'any';

export interface PendingStep {
  readonly sessionId: string;
  readonly model: string;
  /** The whole prompt the step needs in the KV cache, tokens. */
  readonly promptTokens: number;
  /** Tokens the step is expected to generate. */
  readonly expectedOutputTokens: number;
  /** Per node id: how many leading prompt tokens that node already holds in its KV cache for this session. */
  readonly cachedTokens?: Readonly<Record<string, number>>;
  /**
   * Keys of the prompt's whole-block prefixes (prefixBlockKeys): a node whose profile lists some of them holds that
   * much of the prompt's KV already — a fork's, a rollback's or a child's shared prefix — and prefills only the rest.
   */
  readonly prefixKeys?: readonly string[];
  /** Per node id: bytes of this session's objects (checkpoint, component pages) that node lacks. */
  readonly missingBytes?: Readonly<Record<string, number>>;
  /** Size of the model's KV state per token, bytes (the engines issue measures it: `kv_bytes_per_token`). */
  readonly kvBytesPerToken: number;
  /** Memory the step needs on a node (weights + KV), bytes; 0 or absent when unknown. */
  readonly memoryBytes?: number;
  /** The step samples (temperature > 0): it cannot run speculatively, which is greedy only. */
  readonly sampled?: boolean;
  /** This device can draft for the step: speculative runs (drafted here, verified by a node that verifies) are estimated too. */
  readonly speculative?: SpeculativeStep;
}

export interface PlacementPrefs {
  readonly objective: Objective;
  readonly privacy: Privacy;
  /** The most one step may cost, USD. Absent: no limit. */
  readonly budgetUsd?: number;
  /** The user pinned the session to this node: it runs there or the decision fails saying why. */
  readonly pin?: string;
  /** Unplugged nodes below this battery level (0..1) are used only when nothing else can run the step. Default 0.2. */
  readonly minBatteryLevel?: number;
  /** Relative gain a move must beat to leave the current node (0.2 = 20%). Default 0.2. */
  readonly hysteresis?: number;
  /** Fixed cost of moving a session (checkpoint, publish, resume), ms, on top of the estimated transfer. Default 500. */
  readonly moveCostMs?: number;
  /** For `balanced`: what an hour of the user's waiting is worth, USD. Default 10. */
  readonly usdPerHour?: number;
}

export const DEFAULT_PREFS = { minBatteryLevel: 0.2, hysteresis: 0.2, moveCostMs: 500, usdPerHour: 10 } as const;

/**
 * The objective's score of a step that takes `totalMs` and costs `costUsd`, lower is better: ms for `fastest`, USD
 * for `cheapest`, and for `balanced` the time plus the cost turned into waiting at the user's price of time. The
 * simulator's oracle scores with it too.
 */
export function objectiveScore(totalMs: number, costUsd: number, prefs: PlacementPrefs): number {
  if (prefs.objective === 'fastest') return totalMs;
  if (prefs.objective === 'cheapest') return costUsd;
  return totalMs + costUsd * (3_600_000 / (prefs.usdPerHour ?? DEFAULT_PREFS.usdPerHour));
}

/** How the node would get the step's prompt into its KV cache. */
export type Resume = 'cached' | 'prefill' | 'kv-ship';

/** How a step runs: on the node (here or there), or speculatively (drafted on this device, verified by the node). */
export type RunMode = 'run' | 'speculative';

export interface Estimate {
  /** The node that runs the step; speculative: the node that verifies (the session stays on this device). */
  readonly nodeId: string;
  /** Absent: 'run'. */
  readonly mode?: 'speculative';
  /** A speculative estimate's plan: draft length, acceptance, tokens and time per round. */
  readonly speculative?: SpeculativePlan;
  readonly name: string;
  /** False when a hard constraint rules the node out; `excluded` says which. */
  readonly allowed: boolean;
  readonly excluded?: string;
  /** Set when a soft constraint (low battery) makes the node a last resort. */
  readonly avoided?: string;
  readonly transferMs: number;
  readonly rttMs: number;
  readonly resume: Resume;
  /** Time to get the prompt into the cache by the chosen `resume` (prefill of uncached tokens, or KV shipping + rest). */
  readonly resumeMs: number;
  /** Leading prompt tokens the node holds from a prefix it reported (PendingStep.prefixKeys) when more than the session's own cache there; else 0. */
  readonly prefixTokens: number;
  readonly prefillMs: number;
  readonly kvShipMs: number;
  readonly decodeMs: number;
  readonly queueMs: number;
  readonly totalMs: number;
  readonly costUsd: number;
  /** The objective's score, lower is better (ms for fastest/balanced, USD for cheapest). */
  readonly score: number;
}

export interface Decision {
  readonly nodeId: string;
  /** True when the chosen node differs from `current`. */
  readonly move: boolean;
  readonly estimate: Estimate;
  /** Every node considered, allowed or not, in the order given. */
  readonly candidates: readonly Estimate[];
  readonly reason: string;
}

const count = v.pipe(v.number(), v.finite(), v.minValue(0));
const perNode = v.optional(v.record(v.string(), count));

export const PendingStepSchema = v.strictObject({
  sessionId: v.pipe(v.string(), v.minLength(1)),
  model: v.pipe(v.string(), v.minLength(1)),
  promptTokens: count,
  expectedOutputTokens: count,
  cachedTokens: perNode,
  prefixKeys: v.optional(PrefixKeysSchema),
  missingBytes: perNode,
  kvBytesPerToken: count,
  memoryBytes: v.optional(count),
  sampled: v.optional(v.boolean()),
  speculative: v.optional(v.strictObject({ draftModel: v.optional(v.pipe(v.string(), v.minLength(1))), acceptance: v.pipe(v.number(), v.minValue(0), v.maxValue(1)) })),
});

export const PlacementPrefsSchema = v.strictObject({
  objective: v.picklist(['fastest', 'cheapest', 'balanced']),
  privacy: v.picklist(['this-device', 'my-devices', 'any']),
  budgetUsd: v.optional(count),
  pin: v.optional(v.pipe(v.string(), v.minLength(1))),
  minBatteryLevel: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  hysteresis: v.optional(v.pipe(v.number(), v.minValue(0), v.maxValue(1))),
  moveCostMs: v.optional(count),
  usdPerHour: v.optional(v.pipe(v.number(), v.finite(), v.gtValue(0))),
});

function parse<S extends v.GenericSchema>(schema: S, value: unknown, what: string, code: Extract<ErrorCode, `placement/${string}`>, hint: string): v.InferOutput<S> {
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const where = issue?.path?.map((p) => String(p.key)).join('.');
  throw new FerryError(code, `${what} is invalid${where ? ` at "${where}"` : ''}: ${issue?.message ?? 'does not match the schema'}. ${hint}`);
}

/** May data of a session with this privacy setting go to this node? The one rule every placement obeys. */
export function privacyAllows(privacy: Privacy, node: Pick<NodeProfile, 'kind' | 'trust'>): boolean {
  if (privacy === 'any') return true;
  if (privacy === 'this-device') return node.kind === 'this-device';
  return node.kind !== 'cloud' && node.trust === 'own';
}

const PRIVACY_WORDS: Record<Privacy, string> = { 'this-device': 'this device only', 'my-devices': 'your devices only', any: 'any node' };

// ---------------------------------------------------------------------------------------------- estimates

function ms(bytes: number, bytesPerSecond: number): number {
  return bytes <= 0 ? 0 : (bytes / bytesPerSecond) * 1000;
}

/** Leading prompt tokens `node` holds from a prefix it reported, at most the prompt. */
function heldOn(step: PendingStep, node: NodeProfile): number {
  if (!step.prefixKeys?.length || !node.prefixes?.length) return 0;
  return Math.min(heldPrefixTokens(step.prefixKeys, new Set(node.prefixes)), step.promptTokens);
}

function estimateOn(step: PendingStep, node: NodeProfile, nodes: readonly NodeProfile[], prefs: PlacementPrefs, current: NodeProfile | undefined): Estimate {
  const name = nodeName(node);
  const speed = node.models[step.model];
  const costUsd = tokensCostUsd(node.price, step.promptTokens, step.expectedOutputTokens);
  const none = { transferMs: 0, rttMs: 0, resume: 'prefill' as const, resumeMs: 0, prefixTokens: 0, prefillMs: 0, kvShipMs: 0, decodeMs: 0, queueMs: 0, totalMs: Infinity, costUsd, score: Infinity };
  const exclude = (why: string): Estimate => ({ nodeId: node.id, name, allowed: false, excluded: why, ...none });

  if (!privacyAllows(prefs.privacy, node)) return exclude(`privacy: ${PRIVACY_WORDS[prefs.privacy]}`);
  if (!speed) return exclude(`no measured speed for ${modelName(step.model)}`);
  if (step.memoryBytes && node.memoryBytes < step.memoryBytes) return exclude(`needs ${gib(step.memoryBytes)}, has ${gib(node.memoryBytes)}`);

  const remote = node.kind !== 'this-device';
  const rttMs = remote ? node.link.rttMs : 0;
  // Objects travel from where the session is now (via the relay) to the target: the slower link bounds it.
  const from = current && current.id !== node.id ? current : undefined;
  const pathBps = Math.min(node.link.bandwidthBps, from ? from.link.bandwidthBps : Infinity);
  const transferMs = ms(step.missingBytes?.[node.id] ?? 0, pathBps);

  const ownCache = Math.min(step.cachedTokens?.[node.id] ?? 0, step.promptTokens);
  const held = heldOn(step, node);
  const cachedHere = Math.max(ownCache, held);
  const prefixTokens = held > ownCache ? held : 0;
  const prefillMs = ((step.promptTokens - cachedHere) / speed.prefillTps) * 1000;
  // KV shipping: load the longest cache another node holds (both engines must save/load KV), prefill the rest.
  let kvShipMs = Infinity;
  if (node.kvState && step.kvBytesPerToken > 0) {
    for (const src of nodes) {
      const held = Math.max(Math.min(step.cachedTokens?.[src.id] ?? 0, step.promptTokens), heldOn(step, src));
      if (src.id === node.id || !src.kvState || held <= cachedHere) continue;
      const bps = Math.min(src.link.bandwidthBps, node.link.bandwidthBps);
      const srcRtt = src.kind === 'this-device' ? 0 : src.link.rttMs;
      const t = ms(held * step.kvBytesPerToken, bps) + srcRtt + ((step.promptTokens - held) / speed.prefillTps) * 1000;
      kvShipMs = Math.min(kvShipMs, t);
    }
  }
  const resume: Resume = cachedHere >= step.promptTokens ? 'cached' : kvShipMs < prefillMs ? 'kv-ship' : 'prefill';
  const resumeMs = Math.min(prefillMs, kvShipMs);
  const decodeMs = (step.expectedOutputTokens / speed.decodeTps) * 1000;
  const queueMs = node.queueWaitMs;
  const totalMs = transferMs + rttMs + resumeMs + decodeMs + queueMs;
  const score = objectiveScore(totalMs, costUsd, prefs);

  const base = { nodeId: node.id, name, transferMs, rttMs, resume, resumeMs, prefixTokens, prefillMs, kvShipMs, decodeMs, queueMs, totalMs, costUsd, score };
  if (prefs.budgetUsd !== undefined && costUsd > prefs.budgetUsd) return { ...base, allowed: false, excluded: `costs ${usd(costUsd)}, over the ${usd(prefs.budgetUsd)} budget` };
  const minBattery = prefs.minBatteryLevel ?? DEFAULT_PREFS.minBatteryLevel;
  if (node.battery && !node.battery.charging && node.battery.level < minBattery) {
    return { ...base, allowed: true, avoided: `battery at ${Math.round(node.battery.level * 100)}% and unplugged` };
  }
  return { ...base, allowed: true };
}

/**
 * The step run speculatively: `drafter` (this device, where the session stays) drafts, `verifier` verifies. No
 * session objects travel (only the prompt's ids, once); the verifier reads the prompt and every drafted id.
 */
function estimateSpeculative(step: PendingStep, drafter: NodeProfile, verifier: NodeProfile, prefs: PlacementPrefs, spec: SpeculativeStep): Estimate {
  const name = `${nodeName(drafter)}, verified by ${nodeName(verifier)}`;
  const ids = { nodeId: verifier.id, name, mode: 'speculative' as const };
  const none = { transferMs: 0, rttMs: 0, resume: 'prefill' as const, resumeMs: 0, prefixTokens: 0, prefillMs: 0, kvShipMs: 0, decodeMs: 0, queueMs: 0, totalMs: Infinity, costUsd: 0, score: Infinity };
  const exclude = (why: string): Estimate => ({ ...ids, allowed: false, excluded: why, ...none });
  if (step.sampled) return exclude('the step samples, and speculative decoding gives greedy tokens only');
  if (!privacyAllows(prefs.privacy, verifier)) return exclude(`privacy: ${PRIVACY_WORDS[prefs.privacy]}`);
  const plan = speculativePlan(drafter, verifier, step.model, spec);
  if ('excluded' in plan) return exclude(plan.excluded);
  const verify = verifier.models[step.model]!;
  const draft = drafter.models[spec.draftModel ?? step.model]!;
  const rttMs = verifier.link.rttMs;
  // The prompt's ids, 4 bytes each, once.
  const transferMs = ms(step.promptTokens * 4, verifier.link.bandwidthBps);
  // Both read the prompt before the first round: the draft here (its cache holds the session), then the verifier.
  const cachedThere = Math.max(Math.min(step.cachedTokens?.[verifier.id] ?? 0, step.promptTokens), heldOn(step, verifier));
  const cachedHere = Math.min(step.cachedTokens?.[drafter.id] ?? 0, step.promptTokens);
  const prefillMs = ((step.promptTokens - cachedHere) / draft.prefillTps + (step.promptTokens - cachedThere) / verify.prefillTps) * 1000;
  const decodeMs = (step.expectedOutputTokens / plan.tokensPerRound) * plan.roundMs;
  // Verification joins the worker's batch rather than queueing as a run.
  const queueMs = 0;
  const totalMs = transferMs + rttMs + prefillMs + decodeMs + queueMs;
  const costUsd = tokensCostUsd(verifier.price, step.promptTokens + verifiedDraftTokens(plan, step.expectedOutputTokens), step.expectedOutputTokens);
  const base = { ...ids, speculative: plan, transferMs, rttMs, resume: 'prefill' as const, resumeMs: prefillMs, prefixTokens: 0, prefillMs, kvShipMs: Infinity, decodeMs, queueMs, totalMs, costUsd, score: objectiveScore(totalMs, costUsd, prefs) };
  if (prefs.budgetUsd !== undefined && costUsd > prefs.budgetUsd) return { ...base, allowed: false, excluded: `costs ${usd(costUsd)}, over the ${usd(prefs.budgetUsd)} budget` };
  const minBattery = prefs.minBatteryLevel ?? DEFAULT_PREFS.minBatteryLevel;
  if (drafter.battery && !drafter.battery.charging && drafter.battery.level < minBattery) {
    return { ...base, allowed: true, avoided: `battery at ${Math.round(drafter.battery.level * 100)}% and unplugged` };
  }
  return { ...base, allowed: true };
}

/** Speculative candidates: this device drafts, each node that verifies checks (none without a drafting device). */
function speculativeCandidates(step: PendingStep, nodes: readonly NodeProfile[], prefs: PlacementPrefs): Estimate[] {
  const drafter = nodes.find((n) => n.kind === 'this-device');
  if (!step.speculative || !drafter) return [];
  return nodes.filter((n) => n.verifies && n.kind !== 'this-device').map((n) => estimateSpeculative(step, drafter, n, prefs, step.speculative!));
}

/** Whether `c` is how the session runs now: on `current`, in `mode`. */
function isCurrent(c: Estimate, current: string | undefined, mode: RunMode): boolean {
  return c.nodeId === current && (c.mode ?? 'run') === mode;
}

/** a better than b under the objective (ties: faster, then cheaper, then earlier in the list). */
function better(a: Estimate, b: Estimate): boolean {
  if (a.score !== b.score) return a.score < b.score;
  if (a.totalMs !== b.totalMs) return a.totalMs < b.totalMs;
  return a.costUsd < b.costUsd;
}

/** Does leaving `stay` for `go` beat the hysteresis margin plus the move cost? */
function worthMoving(go: Estimate, stay: Estimate, prefs: PlacementPrefs): boolean {
  const margin = prefs.hysteresis ?? DEFAULT_PREFS.hysteresis;
  const moveCostMs = prefs.moveCostMs ?? DEFAULT_PREFS.moveCostMs;
  if (prefs.objective === 'cheapest') {
    if (go.costUsd < stay.costUsd * (1 - margin)) return true;
    // Same price (both free, say): a move must still buy a clear speed-up.
    return go.costUsd <= stay.costUsd && go.totalMs + moveCostMs < stay.totalMs * (1 - margin);
  }
  return go.score + moveCostMs < stay.score * (1 - margin);
}

// ---------------------------------------------------------------------------------------------- decide

/**
 * Where should the step run? `current` is the node the session is on now (undefined for a new session).
 * Throws `placement/no-node` when no node may run it, `placement/pin-*` when the pin cannot be honoured, and
 * `placement/bad-*` on malformed input.
 */
export function decide(step: PendingStep, nodes: readonly NodeProfile[], prefs: PlacementPrefs, current?: string, currentMode: RunMode = 'run'): Decision {
  parse(PendingStepSchema, step, 'Pending step', 'placement/bad-step', 'Token counts and byte sizes must be non-negative numbers.');
  parse(PlacementPrefsSchema, prefs, 'Placement preferences', 'placement/bad-prefs', 'Check the objective, privacy and budget settings.');
  const seen = new Set<string>();
  for (const n of nodes) {
    if (!v.is(NodeProfileSchema, n)) restoreNodeProfile(n);
    if (seen.has(n.id)) throw new FerryError('placement/bad-profile', `Two node profiles share the id "${n.id}"; each node must be listed once.`);
    seen.add(n.id);
  }
  // Running speculatively, the session's objects are on this device (`current` names the verifier).
  const here = current === undefined ? undefined : currentMode === 'speculative' ? nodes.find((n) => n.kind === 'this-device') : nodes.find((n) => n.id === current);
  const candidates = [...nodes.map((n) => estimateOn(step, n, nodes, prefs, here)), ...speculativeCandidates(step, nodes, prefs)];
  const tokens = `${step.expectedOutputTokens.toLocaleString('en-US')} output tokens`;

  if (prefs.pin !== undefined) {
    const pinned = candidates.find((c) => c.nodeId === prefs.pin && !c.mode);
    if (!pinned) {
      throw new FerryError('placement/pin-unavailable', `The session is pinned to "${prefs.pin}", which is not connected. Reconnect that node or unpin the session.`, { details: { pin: prefs.pin } });
    }
    if (!pinned.allowed) {
      throw new FerryError('placement/pin-forbidden', `The session is pinned to ${pinned.name}, but ${pinned.excluded}. Unpin it or change the setting that rules it out.`, { details: { pin: prefs.pin, excluded: pinned.excluded ?? '' } });
    }
    const move = current !== undefined && !isCurrent(pinned, current, currentMode);
    return { nodeId: pinned.nodeId, move, estimate: pinned, candidates, reason: `${move ? 'Moved to' : 'Kept on'} ${pinned.name} because you pinned it there: about ${secs(pinned.totalMs)} for ${tokens}${costWords(pinned)}.` };
  }

  const allowed = candidates.filter((c) => c.allowed);
  const preferred = allowed.filter((c) => !c.avoided);
  const pool = preferred.length > 0 ? preferred : allowed;
  if (pool.length === 0) {
    const why = candidates.map((c) => `${c.name}: ${c.excluded}`).join('; ');
    // Only a node the budget alone ruled out has a full estimate (the other exclusions leave its time unknown).
    const overBudget = candidates.some((c) => !c.allowed && Number.isFinite(c.totalMs));
    throw new FerryError('placement/no-node', `No node can run this step (${why || 'no nodes are connected'}). Connect a node that has ${modelName(step.model)}${prefs.privacy === 'any' ? '' : ', relax the privacy setting'}${overBudget ? ' or raise the budget' : ''}.`, {
      details: { excluded: Object.fromEntries(candidates.map((c) => [c.nodeId, c.excluded ?? ''])) },
    });
  }
  let best = pool[0]!;
  for (const c of pool) if (better(c, best)) best = c;

  const stay = current === undefined ? undefined : pool.find((c) => isCurrent(c, current, currentMode));
  const chosen = stay && stay !== best && !worthMoving(best, stay, prefs) ? stay : best;
  const move = current !== undefined && !isCurrent(chosen, current, currentMode);
  return { nodeId: chosen.nodeId, move, estimate: chosen, candidates, reason: explain(chosen, best, stay, candidates, pool, prefs, current, currentMode, tokens, step.promptTokens) };
}

function explain(chosen: Estimate, best: Estimate, stay: Estimate | undefined, all: readonly Estimate[], pool: readonly Estimate[], prefs: PlacementPrefs, current: string | undefined, currentMode: RunMode, tokens: string, promptTokens: number): string {
  const budget = prefs.budgetUsd === undefined ? '' : chosen.costUsd > 0 ? `, within the ${usd(prefs.budgetUsd)} budget` : '';
  const resume = chosen.resume === 'kv-ship' ? '; ships the KV cache rather than re-reading the prompt' : '';
  const prefix = chosen.prefixTokens > 0 && chosen.resume !== 'kv-ship' ? `; it already holds the first ${chosen.prefixTokens.toLocaleString('en-US')} prompt tokens (a shared prefix), so it reads only the other ${Math.max(0, promptTokens - chosen.prefixTokens).toLocaleString('en-US')}` : '';
  const privacy = prefs.privacy === 'any' ? '' : ` (privacy: ${PRIVACY_WORDS[prefs.privacy]})`;
  const last = chosen.avoided ? `; used despite ${chosen.avoided}, nothing else can run it` : '';
  const avoidedOthers = pool.includes(chosen) && !chosen.avoided ? all.filter((c) => c.avoided).map((c) => `; skipped ${c.name}: ${c.avoided}`).join('') : '';
  const from = current === undefined ? undefined : all.find((c) => isCurrent(c, current, currentMode));
  const plan = chosen.speculative;
  const speculative = plan
    ? `; this device drafts ${plan.draftTokens} tokens a round at ${+plan.draftTps.toPrecision(3)} tok/s and the verifier checks each round in one pass (${Math.round(plan.roundMs)} ms a round with the round trip), ~${+plan.tokensPerRound.toPrecision(2)} tokens a round at ${Math.round(plan.acceptance * 100)}% acceptance; only token ids leave the device`
    : '';

  if (stay && chosen === stay && best !== stay) {
    const gain = prefs.objective === 'cheapest' ? `${costShort(best)} vs ${costShort(stay)}` : `${secs(best.totalMs)} (+${secs(prefs.moveCostMs ?? DEFAULT_PREFS.moveCostMs)} to move) vs ${secs(stay.totalMs)}`;
    return `Stayed on ${stay.name}: ${best.name} would be ${gain} for ${tokens}, not enough to beat the ${Math.round((prefs.hysteresis ?? DEFAULT_PREFS.hysteresis) * 100)}% margin for moving${privacy}.`;
  }
  const runnerUp = pool.filter((c) => c !== chosen).reduce<Estimate | undefined>((a, c) => (a === undefined || better(c, a) ? c : a), undefined);
  const versus = from && from !== chosen && Number.isFinite(from.totalMs)
    ? ` vs ${secs(from.totalMs)}${from.costUsd > 0 ? ` and ${usd(from.costUsd)}` : ''} on ${from.name}`
    : runnerUp ? ` vs ${secs(runnerUp.totalMs)}${runnerUp.costUsd > 0 ? ` and ${usd(runnerUp.costUsd)}` : ''} on ${runnerUp.name}` : '';
  const verb = current === undefined ? (plan ? 'Runs on' : 'Placed on') : isCurrent(chosen, current, currentMode) ? 'Stayed on' : plan ? 'Runs on' : 'Moved to';
  const why = prefs.objective === 'cheapest' ? ' (cheapest)' : prefs.objective === 'balanced' ? ` (best balance at $${prefs.usdPerHour ?? DEFAULT_PREFS.usdPerHour}/h of your time)` : '';
  return `${verb} ${chosen.name}${why}: ${secs(chosen.totalMs)}${versus} for ${tokens}${costWords(chosen)}${budget}${resume}${prefix}${speculative}${privacy}${last}${avoidedOthers}.`;
}

// ---------------------------------------------------------------------------------------------- mid-generation

export interface MigrateCheck {
  /** True when the placement should be decided again now. */
  readonly redecide: boolean;
  readonly reason: string;
}

export interface MigrateCheckOptions {
  /** Tokens generated so far on this node; the measured rate is trusted only after `minObservedTokens`. Default ∞. */
  readonly observedTokens?: number;
  readonly minObservedTokens?: number;
  /** Re-decide when the measured rate is below `estimated × (1 − shortfall)`. Default 0.5 ("well short"). */
  readonly shortfall?: number;
  /** Not worth re-deciding with fewer tokens left than this. Default 32. */
  readonly minRemainingTokens?: number;
}

/**
 * During a generation: has the node fallen well short of its estimate, with enough left to generate that a move
 * could pay? When it says so, call `redecideMidGeneration`, which decides with the measured rate.
 */
export function shouldMigrate(measuredTps: number, estimatedTps: number, remainingTokens: number, opts: MigrateCheckOptions = {}): MigrateCheck {
  for (const [what, x] of [['measured rate', measuredTps], ['estimated rate', estimatedTps], ['remaining tokens', remainingTokens]] as const) {
    if (!Number.isFinite(x) || x < 0) throw new FerryError('placement/bad-rate', `shouldMigrate: ${what} must be a non-negative number, got ${x}.`);
  }
  const shortfall = opts.shortfall ?? 0.5;
  const observed = opts.observedTokens ?? Infinity;
  const minObserved = opts.minObservedTokens ?? 16;
  const minRemaining = opts.minRemainingTokens ?? 32;
  const rate = `${measuredTps.toPrecision(3)} tok/s measured vs ${estimatedTps.toPrecision(3)} tok/s estimated`;
  if (observed < minObserved) return { redecide: false, reason: `Too early to judge: ${observed} of ${minObserved} tokens observed.` };
  if (remainingTokens < minRemaining) return { redecide: false, reason: `Only ${remainingTokens} tokens left; finishing here beats moving.` };
  if (measuredTps >= estimatedTps * (1 - shortfall)) return { redecide: false, reason: `On track: ${rate}.` };
  return { redecide: true, reason: `Running slow: ${rate}, ${remainingTokens.toLocaleString('en-US')} tokens left.` };
}

/**
 * Decides again in the middle of a generation on `current`, with its decode speed replaced by the measured rate:
 * the remaining tokens are the output, the prompt grows by what was generated (the target prefills prompt + partial
 * output, DESIGN.md §4), and `current` holds all of it in its cache.
 */
export function redecideMidGeneration(
  step: PendingStep,
  nodes: readonly NodeProfile[],
  prefs: PlacementPrefs,
  current: string,
  progress: { readonly measuredDecodeTps: number; readonly generatedTokens: number; readonly now: number },
): Decision {
  const remaining = Math.max(0, step.expectedOutputTokens - progress.generatedTokens);
  const prompt = step.promptTokens + progress.generatedTokens;
  const updated = nodes.map((n) => (n.id === current ? withMeasuredSpeed(n, step.model, { decodeTps: Math.max(progress.measuredDecodeTps, 1e-6), measuredAt: progress.now }) : n));
  const next: PendingStep = { ...step, promptTokens: prompt, expectedOutputTokens: remaining, cachedTokens: { ...step.cachedTokens, [current]: prompt } };
  return decide(next, updated, prefs, current);
}

// ---------------------------------------------------------------------------------------------- words

function secs(msValue: number): string {
  const s = msValue / 1000;
  if (!Number.isFinite(s)) return '∞';
  return s >= 10 ? `${Math.round(s).toLocaleString('en-US')} s` : `${+s.toPrecision(2)} s`;
}

/** A dollar amount in a reason: "$0", "$0.0012", "$1.50". */
export function usd(x: number): string {
  if (x === 0) return '$0';
  return x >= 0.01 ? `$${x.toFixed(2)}` : `$${+x.toPrecision(2)}`;
}

function costShort(e: Estimate): string {
  return e.costUsd === 0 ? 'free' : usd(e.costUsd);
}

function costWords(e: Estimate): string {
  return e.costUsd === 0 ? ', free' : `; costs ${usd(e.costUsd)}`;
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

/** Models are named by a file's SHA-256: people read its first 12 hex digits, as git shows commits. */
function modelName(model: string): string {
  return /^[0-9a-f]{64}$/.test(model) ? `model ${model.slice(0, 12)}…` : model;
}
