/** "Retry" on the last reply: which message to send again, from which checkpoint, and the branch that keeps the old reply. */
import type { TranscriptStep } from '../core/session/index.ts';

export interface RetryPoint {
  /** The checkpoint that holds the last message (the run's first step); the session rolls back to its parent. */
  stepId: string;
  text: string;
}

/** The last user message and its step, if an agent reply follows it; null when there is nothing to retry. */
export function retryPoint(steps: readonly TranscriptStep[]): RetryPoint | null {
  for (let i = steps.length - 1; i >= 0; i--) {
    const step = steps[i]!;
    const at = step.events.findLastIndex((e) => e.type === 'user');
    if (at === -1) continue;
    const replied = steps.slice(i).some((s, j) => s.events.some((e, k) => (e.type === 'generation' || e.type === 'reply') && (j > 0 || k > at)));
    const user = step.events[at] as Extract<TranscriptStep['events'][number], { type: 'user' }>;
    return replied && user.text.trim() ? { stepId: step.id, text: user.text } : null;
  }
  return null;
}

/** A branch name for the reply being replaced: "<branch>-try<n>", the first one not taken (48 characters at most). */
export function retryBranchName(branch: string, taken: readonly string[]): string {
  const base = branch.slice(0, 40);
  for (let n = 1; ; n++) {
    const name = `${base}-try${n}`;
    if (!taken.includes(name)) return name;
  }
}
