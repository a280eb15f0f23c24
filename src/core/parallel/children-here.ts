/**
 * Forked children run in the parent's own runtime, one after another (no space to spread them over, or no node of
 * it that can take them), reporting as they go: a `here` progress first, then each one's end, so the live turn
 * shows a progress bar for them as it does for children on nodes.
 */
import type { ChildContext, RunChildren } from '../runtime/runtime.ts';
import type { ChildResult, SubTask } from '../runtime/wit.ts';
import { HERE, type ChildProgress } from './progress.ts';

/** A RuntimeSetup.runChildren that runs them here, saying so (`reason` says why, '' when nothing else was asked for). */
export function hereChildren(onProgress: (p: ChildProgress) => void, reason = ''): RunChildren {
  return async (tasks, context, signal) => {
    if (tasks.length === 0) return [];
    onProgress({ type: 'here', children: tasks.length, reason });
    return childrenHere(tasks, context, signal, onProgress);
  };
}

/** Runs the children in the parent's runtime, one after another, reporting each one's end (on node HERE). */
async function childrenHere(tasks: readonly SubTask[], context: ChildContext, signal: AbortSignal | undefined, emit: (p: ChildProgress) => void): Promise<ChildResult[]> {
  const results: ChildResult[] = [];
  for (const task of tasks) {
    const t0 = Date.now();
    const [result] = await context.here([task], signal);
    results.push(result!);
    emit({ type: 'child-done', child: task.id, node: HERE, ok: result!.ok, ms: Date.now() - t0 });
  }
  return results;
}
