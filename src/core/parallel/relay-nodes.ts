/**
 * The nodes a job of child sessions may use: what the relay lists for the space (its device nodes, its cloud
 * workers that charge nothing — the relay owner's own, as placement counts them — and those that charge when the
 * user lets children go to the cloud), each as one scheduler lane per slot, fast in proportion to its measured
 * decode speed.
 */
import { FerryError } from '../errors.ts';
import { SPACE_HEADER, WorkerListSchema, parseWire, workerPaths, type WorkerList } from '../protocol/index.ts';
import { relayProfiles } from '../placement/fleet.ts';
import { decide, usd } from '../placement/policy.ts';
import { chargesForTokens, tokensCostUsd } from '../placement/profile.ts';
import type { JobNode } from '../runtime/child-progress.ts';
import type { ParallelNode } from './split.ts';

/** One scheduler lane: a slot of a relay node. */
export interface Lane extends ParallelNode {
  /** The relay's worker id that runs it. */
  readonly node: string;
}

export interface NodeChoice {
  /**
   * May cloud workers that charge for tokens (a third party's) take children (privacy "any")? Without: only the
   * user's own — the space's devices and the relay's unpriced workers ("my devices").
   */
  readonly cloud: boolean;
  /** At most this many lanes per node, whatever its slots; default 4. */
  readonly maxLanes?: number;
  /** Only these nodes (relay worker ids), e.g. the ones the user picked; default every node allowed. */
  readonly only?: readonly string[];
  /** The node the parent runs on: the slot it holds is not a lane (a child queued behind its parent never runs). */
  readonly host?: string;
  /**
   * The most the children may cost, USD, and the work they are (all of it, estimated): a worker that charges is
   * used only if running every child there stays within it. Absent: no limit.
   */
  readonly budget?: { readonly usd: number; readonly promptTokens: number; readonly outputTokens: number };
  /**
   * The prompt the children share (their parent's), as prefix keys keyed with the parent's session key (what
   * nodes that ran the parent list: fleet.ts heldPrefixKeys), its length and a child's output, tokens. A node the
   * placement policy finds holding it gets children in proportion to its estimated speed with the prefix held.
   */
  readonly prefix?: { readonly keys: readonly string[]; readonly promptTokens: number; readonly outputTokens: number };
}

/** The relay's list of workers visible to `space`, validated. */
export async function listSpaceWorkers(relayUrl: string, space: string, fetchFn: typeof fetch = (i, init) => globalThis.fetch(i, init), timeoutMs = 15_000): Promise<WorkerList> {
  const url = relayUrl.replace(/\/+$/, '') + workerPaths.list;
  let res: Response;
  try {
    res = await fetchFn(url, { headers: { accept: 'application/json', [SPACE_HEADER]: space }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (cause) {
    throw new FerryError('relay/unreachable', `Cannot reach the relay at ${relayUrl} to list the space's nodes (${cause instanceof Error ? cause.message : String(cause)}).`, { cause });
  }
  if (!res.ok) throw new FerryError('relay/bad-response', `The relay at ${relayUrl} would not list the space's nodes (HTTP ${res.status}).`, { details: { status: res.status } });
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    throw new FerryError('relay/bad-response', `The relay at ${relayUrl} listed its nodes as something that is not JSON.`);
  }
  return parseWire(WorkerListSchema, body, 'The relay\'s list of nodes', 'relay/bad-response');
}

/**
 * The nodes children may use, and their lanes. Throws `parallel/no-nodes` with what to do when there are none:
 * no device of the space offers itself (and the cloud is not allowed, or has no worker either).
 */
export function chooseNodes(list: WorkerList, choice: NodeChoice): { nodes: JobNode[]; lanes: Lane[] } {
  const maxLanes = choice.maxLanes ?? 4;
  type Worker = WorkerList['workers'][number];
  const freeSlots = (w: Worker): number => w.profile.slots - (w.id === choice.host ? 1 : 0);
  const { budget } = choice;
  const affordable = (w: Worker): boolean => !budget || !w.profile.price || tokensCostUsd(w.profile.price, budget.promptTokens, budget.outputTokens) <= budget.usd;
  const own = (w: Worker): boolean => w.kind === 'device' || !chargesForTokens(w.profile.price);
  const allowed = list.workers.filter((w) => (choice.cloud || own(w)) && w.profile.decodeTps > 0 && freeSlots(w) > 0 && (!choice.only || choice.only.includes(w.id)));
  const usable = allowed.filter(affordable);
  const overBudget = allowed.length - usable.length;
  if (usable.length === 0 && choice.only) {
    throw new FerryError('parallel/no-nodes', `None of the chosen nodes (${choice.only.join(', ')}) is attached to this space now (cloud workers that charge count only when the cloud is allowed); pick nodes again from the list.`);
  }
  if (usable.length === 0) {
    const cloud = list.workers.filter((w) => w.kind === 'cloud').length;
    const paid = list.workers.filter((w) => !own(w)).length;
    const hint = overBudget > 0
      ? ` ${overBudget} cloud worker(s) would charge more than the ${usd(budget!.usd)} budget for them; raise the budget to use them.`
      : !choice.cloud && paid > 0
        ? ` ${paid} cloud worker(s) are attached that charge for tokens, but this session keeps its children on your own devices; allow the cloud to use them.`
        : '';
    throw new FerryError('parallel/no-nodes', `No node of this space can take the children: open Ferry on another of your devices and turn on "Offer this device as a node".${hint}`, { details: { cloudWorkers: cloud } });
  }
  const boost = choice.prefix ? prefixBoost({ workers: usable }, choice.prefix) : new Map<string, number>();
  const nodes: JobNode[] = usable.map((w) => ({ id: w.id, name: w.profile.name, kind: w.kind, lanes: Math.max(1, Math.min(maxLanes, freeSlots(w))), speed: w.profile.decodeTps * (boost.get(w.id) ?? 1) }));
  // The node the policy would put a child on first: the scheduler plans in node order.
  nodes.sort((a, b) => (boost.get(b.id) ?? 1) - (boost.get(a.id) ?? 1));
  // A slot of a node runs at its share of the node's speed: the plan stays in proportion to whole nodes.
  const lanes = nodes.flatMap((n) => Array.from({ length: n.lanes }, (_, k): Lane => ({ id: n.lanes === 1 ? n.id : `${n.id}#${k}`, node: n.id, speed: n.speed / n.lanes })));
  return { nodes, lanes };
}

/**
 * Per node that holds a prefix of the children's shared prompt, as the placement policy estimates a child there:
 * how many times faster it runs one with the prefix held than without (prefilling only the rest). Only when the
 * policy's pick for a child counts a held prefix; otherwise nothing (speeds stay the measured decode speeds).
 */
function prefixBoost(list: WorkerList, prefix: NonNullable<NodeChoice['prefix']>): Map<string, number> {
  const boost = new Map<string, number>();
  const profiles = relayProfiles(list, { rttMs: 0, bandwidthBps: 1e9 }, Date.now());
  const models = new Set(profiles.flatMap((p) => Object.keys(p.models)));
  if (profiles.length === 0 || models.size !== 1) return boost;
  const step = { sessionId: 'child', model: [...models][0]!, promptTokens: prefix.promptTokens, expectedOutputTokens: prefix.outputTokens, kvBytesPerToken: 0 };
  const prefs = { objective: 'fastest', privacy: 'any' } as const;
  let held;
  try {
    held = decide({ ...step, prefixKeys: prefix.keys }, profiles, prefs);
  } catch {
    return boost;
  }
  if (held.estimate.prefixTokens === 0) return boost;
  const cold = decide(step, profiles, prefs);
  for (const c of held.candidates) {
    const without = cold.candidates.find((x) => x.nodeId === c.nodeId && !x.mode);
    if (c.mode || c.prefixTokens === 0 || !without || !(c.totalMs > 0)) continue;
    boost.set(c.nodeId, without.totalMs / c.totalMs);
  }
  return boost;
}
