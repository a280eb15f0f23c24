/**
 * What a person does to a session's branches from its screen — fork, roll back (and undo it), switch, compare, and
 * "Retry" the last reply — done on the store through the core's Session; the agent follows the store before its
 * next run. Each says what it did, with an undo where one exists.
 */
import { FerryError } from '../core/errors.ts';
import { compareBranches, undoLastRollback, type Session } from '../core/session/index.ts';
import type { ObjectId } from '../core/store/index.ts';
import { ui } from './app.svelte.ts';
import { retryBranchName, retryPoint } from './retry.ts';
import type { OpenSession } from './session.svelte.ts';

/** Runs branch work on the store (the agent follows it there before its next run), then reads everything again. */
async function change(open: OpenSession, fn: (s: Session) => Promise<unknown>, done?: string): Promise<boolean> {
  if (open.loading || open.loadError || open.busy) return false;
  if (!open.here) {
    ui.fail(new FerryError('relay/move-busy', `The session runs on ${open.placement.name}; bring it back before changing its branches.`), open.id);
    return false;
  }
  open.busy = true;
  try {
    const ok = (await ui.attempt(async () => {
      await fn(open.session);
      await ui.app.sessions.ran(open.session);
      return true;
    }, open.id)) === true;
    await open.reload();
    if (ok && done) ui.notify(done);
    return ok;
  } finally {
    open.busy = false;
  }
}

export function fork(open: OpenSession, at: ObjectId, name: string): Promise<boolean> {
  return change(open, async (s) => {
    await s.fork(at, name);
    await s.switchBranch(name);
  }, `Forked: now on branch "${name}".`);
}

export async function rollback(open: OpenSession, to: ObjectId): Promise<boolean> {
  const ok = await change(open, (s) => s.rollback(to));
  if (ok) ui.notify(`Rolled "${open.branch}" back.`, { label: 'Undo', run: () => void undoRollback(open) });
  return ok;
}

export function undoRollback(open: OpenSession): Promise<boolean> {
  return change(open, async (s) => {
    if (!(await undoLastRollback(s))) throw new FerryError('app/nothing-to-undo', `Branch "${s.branch}" has no rollback to undo (or it has moved since).`);
  }, 'Rollback undone.');
}

export function switchBranch(open: OpenSession, name: string): Promise<boolean> {
  return change(open, (s) => s.switchBranch(name), `Switched to branch "${name}".`);
}

export function compare(open: OpenSession, a: string, b: string) {
  return ui.attempt(() => compareBranches(open.session, a, b));
}

/** Whether "Retry" can regenerate the last reply now. */
export function canRetry(open: OpenSession): boolean {
  return !open.busy && !open.running && open.here && retryPoint(open.steps) !== null;
}

/**
 * Regenerates the last reply: the old reply is kept as a fork ("<branch>-tryN", at the current head, shown in the
 * checkpoint tree and comparable), the branch rolls back to before the last message (also in the reflog), and the
 * same message is sent again.
 */
export async function retry(open: OpenSession): Promise<boolean> {
  const point = retryPoint(open.steps);
  if (!point || open.running) return false;
  let kept = '';
  const ok = await change(open, async (s) => {
    const cp = await s.checkpoint(point.stepId);
    if (cp.parent === null) throw new FerryError('app/nothing-to-undo', 'The last message has no checkpoint before it to roll back to.');
    kept = retryBranchName(s.branch, (await s.branches()).map((b) => b.name));
    await s.fork(await s.head(), kept);
    await s.rollback(cp.parent);
  });
  if (!ok) return false;
  ui.notify(`Retrying. The previous reply is kept on branch "${kept}".`);
  return open.send(point.text);
}
