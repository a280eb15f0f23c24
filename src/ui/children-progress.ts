/**
 * What the live turn shows while a step's forked children run (a survey's notes per source): how many are done, on
 * which nodes they run, and why they run here when no other node could take them. Folded from the runtime's
 * `child-progress` events (core/parallel/progress.ts), one at a time, into plain data the view renders.
 */
import type { ChildProgress } from '../core/runtime/index.ts';

export interface ChildNodeView {
  id: string;
  name: string;
  kind: 'cloud' | 'device';
  /** Children it finished (well or not). */
  done: number;
  /** Children it runs now. */
  running: number;
  /** Children it runs at once at most (its slots). */
  lanes: number;
}

export interface ChildrenView {
  total: number;
  /** Children finished, on any node (well or not); `failed` of them did not. */
  done: number;
  failed: number;
  nodes: ChildNodeView[];
  /** Set when they run where the session runs, one after another: why no other node took them ('' when none was asked). */
  here: string | null;
  /** Names of nodes that left mid-job (their children went on elsewhere). */
  lost: string[];
  /** The node running each child now, by child id. */
  running: Record<string, string>;
}

const EMPTY: ChildrenView = { total: 0, done: 0, failed: 0, nodes: [], here: null, lost: [], running: {} };

/** The view after `p`; `view` is null before the job's first event. Never mutates its input. */
export function foldChildProgress(view: ChildrenView | null, p: ChildProgress): ChildrenView {
  const v: ChildrenView = view ?? EMPTY;
  const nameOf = (id: string) => v.nodes.find((n) => n.id === id)?.name ?? id;
  const withRunning = (running: Record<string, string>, extra: Partial<ChildrenView> = {}, doneOn?: string): ChildrenView => ({
    ...v,
    ...extra,
    running,
    nodes: v.nodes.map((n) => ({
      ...n,
      // A child's end is reported once its result is read, which may be after its node started the next one.
      running: Math.min(n.lanes, Object.values(running).filter((id) => id === n.id).length),
      done: n.done + (n.id === doneOn ? 1 : 0),
    })),
  });
  const without = (child: string): Record<string, string> => Object.fromEntries(Object.entries(v.running).filter(([c]) => c !== child));
  switch (p.type) {
    // A job's first event: a later fork in the same run starts afresh.
    case 'nodes':
      return {
        ...EMPTY,
        total: Object.values(p.plan).reduce((sum, children) => sum + children.length, 0),
        nodes: p.nodes.map((n) => ({ id: n.id, name: n.name, kind: n.kind, done: 0, running: 0, lanes: n.lanes })),
      };
    case 'here':
      return { ...EMPTY, total: p.children, here: p.reason };
    case 'child-start':
      return withRunning({ ...without(p.child), [p.child]: p.node });
    case 'child-done':
      return withRunning(without(p.child), { done: v.done + 1, failed: v.failed + (p.ok ? 0 : 1) }, p.node);
    case 'child-requeued':
      return withRunning(without(p.child));
    case 'node-lost':
      return { ...v, lost: v.lost.includes(nameOf(p.node)) ? v.lost : [...v.lost, nameOf(p.node)] };
    case 'child-checkpoint':
    case 'child-failed':
    case 'child-stolen':
      return v;
  }
}
