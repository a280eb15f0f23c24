/**
 * Views of a session's checkpoint DAG that a person reads: the steps of a branch, the whole tree laid out in lanes
 * (every branch's history merged, each checkpoint drawn on the first branch that holds it), two branches compared at
 * their newest common checkpoint, a one-line summary of a checkpoint, and the rollback that can still be undone.
 */
import type { ObjectId } from '../store/index.ts';
import { branchRef } from './refs.ts';
import type { Checkpoint, SessionEvent } from './schema.ts';
import type { HistoryEntry, Session } from './session.ts';

/** One user-visible step of a transcript: the events of one checkpoint. */
export interface TranscriptStep {
  id: ObjectId;
  at: number;
  events: SessionEvent[];
}

/** A checkpoint of a branch's chain, root first, with its step count. */
export type ChainStep = TranscriptStep & { n: number };

/** A node of the checkpoint DAG as the tree view draws it. */
export interface TreeNode {
  id: ObjectId;
  parent: ObjectId | null;
  at: number;
  /** Branches whose head is this checkpoint. */
  heads: string[];
  /** The branch this node is drawn on (the first branch, current first, whose history holds it). */
  lane: string;
  summary: string;
  steps: number;
}

export interface SessionTree {
  branch: string;
  branches: { name: string; head: ObjectId }[];
  /** Oldest first. */
  nodes: TreeNode[];
  /** The head the last rollback of the current branch moved away from, if it can still be restored. */
  undoRollback: { from: ObjectId; to: ObjectId } | null;
}

/**
 * A one-line summary of a checkpoint for the tree view: what the person said, else what the step's tools did
 * ("workspace: wrote src/math.ts, README.md"), else the agent's words, else what happened to the session.
 */
export function summarize(cp: Pick<Checkpoint, 'events' | 'parent'>): string {
  const user = cp.events.find((e) => e.type === 'user');
  if (user) return `You: ${user.text}`;
  const calls = cp.events.filter((e) => e.type === 'tool-call');
  if (calls.length > 0) {
    const failed = cp.events.some((e) => e.type === 'tool-result' && !e.ok);
    return toolActions(calls) + (failed ? ' (a call failed)' : '');
  }
  const said = cp.events.find((e) => e.type === 'generation' || e.type === 'reply');
  if (said) return `Agent: ${said.text}`;
  for (const e of cp.events) {
    if (e.type === 'placement') return `Moved ${e.from} → ${e.to}`;
    if (e.type === 'fork') return `Fork "${e.branch}" from "${e.fromBranch}"`;
  }
  const results = cp.events.filter((e) => e.type === 'tool-result');
  if (results.length > 0) return `Tool results (${results.every((r) => r.ok) ? 'ok' : 'some failed'})`;
  return cp.parent === null ? 'Session started' : 'Checkpoint';
}

/** What a step's tool calls did, in words: calls of one tool and operation share one phrase, their targets listed. */
export function toolActions(calls: readonly { tool: string; args: string }[]): string {
  const phrases = new Map<string, string[]>();
  for (const call of calls) {
    const { op, target } = callParts(call.args);
    const key = `${call.tool}: ${op ? (PAST[op] ?? op) : 'called'}`;
    const targets = phrases.get(key) ?? [];
    if (target && !targets.includes(target)) targets.push(target);
    phrases.set(key, targets);
  }
  return [...phrases].map(([phrase, targets]) => (targets.length > 0 ? `${phrase} ${targets.join(', ')}` : phrase)).join('; ');
}

/** Operations of the built-in tools, said in the past tense. */
const PAST: Readonly<Record<string, string>> = { write: 'wrote', read: 'read', list: 'listed', patch: 'patched', add: 'added', update: 'updated', delete: 'deleted', get: 'read', check: 'checked', render: 'rendered', search: 'searched', fetch: 'fetched', run: 'ran', eval: 'ran' };

/** A call's operation and what it acted on (a path, a title, a query…), from its JSON arguments when they say. */
function callParts(args: string): { op: string | undefined; target: string | undefined } {
  let value: unknown;
  try {
    value = JSON.parse(args);
  } catch {
    return { op: undefined, target: undefined };
  }
  if (typeof value !== 'object' || value === null) return { op: undefined, target: undefined };
  const a = value as Record<string, unknown>;
  const op = typeof a.op === 'string' ? a.op : undefined;
  const raw = [a.path, a.title, a.query, a.url, a.name, a.id].find((t) => typeof t === 'string' || typeof t === 'number');
  const target = raw === undefined ? undefined : typeof raw === 'string' && (a.query === raw || a.title === raw) ? `“${clip(raw)}”` : clip(String(raw));
  // A patch names the files its diff touches.
  return { op: a.dry_run === true && op === 'patch' ? 'check' : op, target: op === 'patch' && typeof a.diff === 'string' ? diffFiles(a.diff) : target };
}

/** The files a unified diff touches. */
function diffFiles(diff: string): string | undefined {
  const files = [...diff.matchAll(/^\+\+\+ (?:b\/)?(\S+)/gm)].map((m) => m[1]!).filter((f) => f !== '/dev/null');
  return files.length > 0 ? files.join(', ') : undefined;
}

const clip = (text: string): string => (text.length > 60 ? `${text.slice(0, 59)}…` : text);

/**
 * The whole DAG: the current branch from `chain` (its checkpoints, root first), the other branches walked back
 * from their heads only until they meet a drawn checkpoint. Parents come before children.
 */
export async function layoutTree(session: Session, chain: readonly ChainStep[]): Promise<SessionTree> {
  const branches = (await session.branches()).sort((a, b) => (a.name === session.branch ? -1 : b.name === session.branch ? 1 : a.name.localeCompare(b.name)));
  const nodes = new Map<ObjectId, TreeNode>();
  chain.forEach((c, i) => {
    const parent = i === 0 ? null : chain[i - 1]!.id;
    nodes.set(c.id, { id: c.id, parent, at: c.at, heads: [], lane: session.branch, summary: summarize({ events: c.events, parent }), steps: c.n });
  });
  const current = chain.at(-1);
  if (current) nodes.get(current.id)!.heads.push(session.branch);
  for (const b of branches) {
    if (b.name === session.branch && current?.id === b.head) continue;
    for (let id: ObjectId | null = b.head; id !== null; ) {
      const existing = nodes.get(id);
      if (existing) {
        if (id === b.head) existing.heads.push(b.name);
        break;
      }
      const cp = await session.checkpoint(id);
      nodes.set(id, { id, parent: cp.parent, at: cp.at, heads: id === b.head ? [b.name] : [], lane: b.name, summary: summarize(cp), steps: cp.counters.steps });
      id = cp.parent;
    }
  }
  const depth = new Map<ObjectId, number>();
  const depthOf = (id: ObjectId): number => {
    const path: ObjectId[] = [];
    let cur: ObjectId | null = id;
    while (cur !== null && !depth.has(cur)) {
      path.push(cur);
      cur = nodes.get(cur)?.parent ?? null;
    }
    let d = cur === null ? -1 : depth.get(cur)!;
    for (let i = path.length - 1; i >= 0; i--) depth.set(path[i]!, ++d);
    return depth.get(id)!;
  };
  const ordered = [...nodes.values()].sort((a, b) => depthOf(a.id) - depthOf(b.id) || a.at - b.at);
  return { branch: session.branch, branches: branches.map((b) => ({ name: b.name, head: b.head })), nodes: ordered, undoRollback: await lastRollback(session) };
}

/**
 * The checkpoints from the root to `at` (on any branch), root first, each with its step count: read from the store
 * back to where the walk meets `known` (a chain already read, such as the current branch's), whose prefix is reused.
 */
export async function chainTo(session: Session, at: ObjectId, known: readonly ChainStep[] = []): Promise<ChainStep[]> {
  const index = new Map(known.map((s, i) => [s.id, i]));
  const walked: ChainStep[] = [];
  let id: ObjectId | null = at;
  while (id !== null) {
    const i = index.get(id);
    if (i !== undefined) return known.slice(0, i + 1).concat(walked.reverse());
    const cp = await session.checkpoint(id);
    walked.push({ id, at: cp.at, n: cp.counters.steps, events: cp.events });
    id = cp.parent;
  }
  return walked.reverse();
}

/** Two branches' transcripts split at their newest common checkpoint. */
export async function compareBranches(session: Session, a: string, b: string): Promise<{ common: TranscriptStep[]; onlyA: TranscriptStep[]; onlyB: TranscriptStep[] }> {
  const [ha, hb] = await Promise.all([session.history(a), session.history(b)]);
  const inB = new Set(hb.map((h) => h.id));
  const split = ha.findIndex((h) => inB.has(h.id));
  const base = split === -1 ? null : ha[split]!.id;
  const baseInB = base === null ? hb.length : hb.findIndex((h) => h.id === base);
  return {
    common: split === -1 ? [] : toSteps(ha.slice(split)),
    onlyA: toSteps(ha.slice(0, split === -1 ? ha.length : split)),
    onlyB: toSteps(hb.slice(0, baseInB)),
  };
}

/** The head the current branch's last rollback moved away from, while the branch still sits where it rolled back to. */
export async function lastRollback(session: Session): Promise<{ from: ObjectId; to: ObjectId } | null> {
  const last = (await session.reflog()).at(-1);
  if (!last || !last.reason.startsWith('rollback from ') || last.from === null || last.to === null) return null;
  return (await session.store.getRef(branchRef(session.id, session.branch))) === last.to ? { from: last.from, to: last.to } : null;
}

/** Moves the current branch back to the head its last rollback left (kept in the reflog). Returns false when there is none. */
export async function undoLastRollback(session: Session): Promise<boolean> {
  const undo = await lastRollback(session);
  if (!undo) return false;
  await session.store.setRef({ name: branchRef(session.id, session.branch), expect: undo.to, next: undo.from, reason: `undo rollback to ${undo.to}` });
  return true;
}

function toSteps(history: readonly HistoryEntry[]): TranscriptStep[] {
  const out: TranscriptStep[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]!;
    if (h.checkpoint.parent === null && h.checkpoint.events.length === 0) continue;
    out.push({ id: h.id, at: h.checkpoint.at, events: h.checkpoint.events });
  }
  return out;
}
