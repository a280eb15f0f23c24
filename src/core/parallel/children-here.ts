/**
 * Forked children run in the parent's own runtime, one after another (no space to spread them over, or no node of
 * it that can take them), reporting as they go: a `here` progress first, then each one's end, so the live turn
 * shows a progress bar for them as it does for children on nodes. Each child is a fresh loop of the parent's agent
 * sharing its tools and engine; its steps are part of the parent's step, which pays for what they generate.
 */
import { FerryError } from '../errors.ts';
import { HERE, type ChildProgress } from '../runtime/child-progress.ts';
import type { AgentLoop, LoopChildren, LoopEvent, LoopState, TokenUsage } from '../runtime/loop.ts';
import type { RunChildren } from '../runtime/runtime.ts';
import type { ChildResult, SubTask } from '../runtime/wit.ts';

/** A RuntimeSetup.runChildren that runs them here, saying so (`reason` says why, '' when nothing else was asked for). */
export function hereChildren(onProgress: (p: ChildProgress) => void, reason = ''): RunChildren {
  return async (tasks, context, signal, spent) => {
    if (tasks.length === 0) return [];
    onProgress({ type: 'here', children: tasks.length, reason });
    const results: ChildResult[] = [];
    for (const task of tasks) {
      const t0 = Date.now();
      const result = await runChildHere(await context.localLoop(spent.usage), task, signal);
      results.push(result);
      onProgress({ type: 'child-done', child: task.id, node: HERE, ok: result.ok, ms: Date.now() - t0 });
    }
    return results;
  };
}

/** An AgentLoop's `runChildren` that runs each child in a fresh loop from `localLoop`, one after another, silently. */
export function childrenOneByOne(localLoop: (usage: TokenUsage) => Promise<AgentLoop>, onEvent?: (child: string, event: LoopEvent) => void): LoopChildren {
  return async (tasks, signal, spent) => {
    const results: ChildResult[] = [];
    for (const task of tasks) results.push(await runChildHere(await localLoop(spent.usage), task, signal, onEvent));
    return results;
  };
}

/**
 * Runs one child task in `loop` until it is done (its summary is the output) or idle (its last reply is). A child
 * cancelled before it starts is not started. A failing child fails alone, unless its step failed as a whole (a tool
 * call that could not complete), which fails the parent's step too.
 */
export async function runChildHere(loop: AgentLoop, task: SubTask, signal: AbortSignal | undefined, onEvent?: (child: string, event: LoopEvent) => void): Promise<ChildResult> {
  if (signal?.aborted) return { id: task.id, ok: false, output: 'Cancelled before it started.' };
  try {
    let lastReply = '';
    for await (const event of loop.run({ type: 'start', task: task.task }, signal)) {
      if (event.type === 'reply') lastReply = event.text;
      onEvent?.(task.id, event);
    }
    return childResultOf(task.id, loop.state, lastReply);
  } catch (err) {
    if (err instanceof FerryError && err.code === 'runtime/step-failed') throw err;
    return { id: task.id, ok: false, output: `The child failed: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/**
 * A finished child's result from its loop state: done → its summary (or its last reply when it gave none), idle →
 * its last reply; anything else was stopped before it finished.
 */
export function childResultOf(id: string, state: Pick<LoopState, 'status' | 'summary'>, lastReply: string): ChildResult {
  if (state.status === 'done') return { id, ok: true, output: state.summary || lastReply };
  if (state.status === 'idle') return { id, ok: true, output: lastReply };
  return { id, ok: false, output: 'The child was stopped before it finished.' };
}
