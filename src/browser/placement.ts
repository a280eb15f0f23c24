/** Where a session is, as the page shows it, and the moves it may be asked for. */
import { FerryError } from '../core/errors.ts';
import type { Decision } from '../core/placement/index.ts';
import { verifyPath, type RunPlacement } from '../core/protocol/index.ts';
import type { LocalData } from './local-data.ts';
import { THIS_DEVICE } from './next-step.ts';

export const HERE = 'This device';
export const CLOUD = 'Cloud worker';
/** Run here, speculatively: this device drafts, the relay's worker verifies. */
export const SPECULATIVE = 'This device, verified by the cloud worker';

/** Where a session is, for people: running here, away on `name`, or on its way to (or back from) there. */
export interface Placement {
  state: 'here' | 'moving' | 'away' | 'returning';
  /** Where it runs now, or is going: "This device", "Cloud worker", or the name of one of the space's devices. */
  name: string;
  /** Another tab of this browser runs it (and this one follows). */
  otherTab?: true;
}

/**
 * Where to move a session: here; here, drafting for the relay's worker to verify (`speculative`); or a relay's node
 * (`where` absent: any cloud worker) named `name` for people.
 */
export type MoveTarget = { here: true; speculative?: boolean } | { here?: false; where?: RunPlacement; name?: string };

/** What a move that fails says: coming back here, or going to `name`. */
export function moveFailure(here: boolean, name: string): { code: 'relay/bring-back-failed' | 'relay/move-failed'; message: string } {
  return here
    ? { code: 'relay/bring-back-failed', message: 'The session could not come back to this device; it is safe in its last checkpoint. Try again' }
    : { code: 'relay/move-failed', message: `The session could not move to ${name}; it stays where it was` };
}

/** A session on its way somewhere takes nothing else until it has arrived. */
export function refuseWhileMoving(placement: Placement): void {
  const { state } = placement;
  if (state === 'moving' || state === 'returning') {
    throw new FerryError('relay/move-busy', `The session ${state === 'moving' ? `is moving to ${placement.name}` : 'is coming back to this device'}; wait for that to finish, then try again.`);
  }
}

/** The move a placement decision asks for: speculative (here, verified there), plainly here, or to the decided node. */
export function targetOf(where: RunPlacement | undefined, decision: Decision): MoveTarget {
  if (decision.estimate.mode === 'speculative') return { here: true, speculative: true };
  return decision.nodeId === THIS_DEVICE ? { here: true } : { where, name: decision.estimate.name };
}

/** The relay's verify socket, from its http(s) address. */
export function verifyUrl(relay: string): string {
  return `${relay.replace(/\/+$/, '').replace(/^http/i, 'ws')}${verifyPath}`;
}

/** Whether the session last ran here speculatively (its list entry says so), to run it so again after a reload. */
export async function ranSpeculatively(data: LocalData, sessionId: string): Promise<boolean> {
  const meta = await data.sessions.get(sessionId).catch(() => undefined);
  return meta?.speculative === true;
}
