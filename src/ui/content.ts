/**
 * The person's own content into a session, from the screens: what the pickers read becomes host steps (files into
 * the workspace, sources into docs; browser/content/host-calls.ts) run where the session runs on this device, and
 * what they added or their tool refused is said afterwards.
 */
import { FerryError } from '../core/errors.ts';
import type { HostCall } from '../core/runtime/loop.ts';
import type { TranscriptStep } from '../core/session/index.ts';
import { hostOutcome, type HostOutcome } from '../browser/content/host-calls.ts';
import { ui } from './app.svelte.ts';

/** Adds content to a session no screen has open yet (the new-session form), then reads what happened from the store. */
export async function addToNewSession(sessionId: string, batches: HostCall[][]): Promise<HostOutcome | undefined> {
  return ui.attempt(async () => {
    await (await ui.host()).addContent(sessionId, ui.requireModel(), batches);
    const session = await ui.app.openSession(sessionId);
    await ui.app.sessions.ran(session);
    return outcomeOf(await ui.app.transcripts.steps(session), batches.length);
  });
}

/** What the last `count` steps (host steps; all of `steps` by default) added and refused. */
export function outcomeOf(steps: readonly TranscriptStep[], count = steps.length): HostOutcome {
  return hostOutcome(steps.slice(-count).flatMap((s) => s.events));
}

/** Says what was added ("Added 3 files to the workspace."), and what was refused as an error with the tool's reasons. */
export function report(outcome: HostOutcome, noun: { one: string; many: string }, where: string): void {
  const n = outcome.added.length;
  if (n > 0) ui.notify(`Added ${n} ${n === 1 ? noun.one : noun.many} to ${where}.`);
  if (outcome.refused.length > 0) {
    const shown = outcome.refused.slice(0, 3).map((r) => `${r.what}: ${r.reason}`).join('; ');
    const more = outcome.refused.length > 3 ? ` (and ${outcome.refused.length - 3} more)` : '';
    ui.fail(new FerryError('content/refused', `${outcome.refused.length} could not be added to ${where}: ${shown}${more}.`));
  }
}
