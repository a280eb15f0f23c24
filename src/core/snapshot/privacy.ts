/**
 * Sessions marked private in their own right (DESIGN §3: "sessions marked private never leave the device"). The mark
 * is a ref in the device's own store, `private/<session id>` (pointing at the session's head object, which every
 * session has); it is not under the session's refs, so it never travels with a sync, and it stays when the session
 * changes. Whatever would send a session off the device asks `assertMayLeave` first: publishing it (Share, Move,
 * a run on another node) is refused in the core, and automatic placement and forked children keep it here, saying
 * why.
 */
import { FerryError } from '../errors.ts';
import { assertSessionId, headRef } from '../session/index.ts';
import type { Store } from '../store/index.ts';

export const PRIVATE_PREFIX = 'private/';

const privateRef = (sessionId: string): string => `${PRIVATE_PREFIX}${sessionId}`;

/** What would take a session off the device, for the message that says why it may not. */
export type LeaveAction = 'share' | 'move' | 'place' | 'children' | 'publish';

const REFUSAL: Record<LeaveAction, string> = {
  share: 'cannot be shared',
  move: 'cannot move to another node',
  place: 'stays on this device whatever automatic placement would choose',
  children: 'runs its forked children on this device',
  publish: 'cannot be published to the relay',
};

/** Marks session `sessionId` private (or not). It must be in `store`. */
export async function setSessionPrivate(store: Store, sessionId: string, isPrivate: boolean): Promise<void> {
  assertSessionId(sessionId);
  const name = privateRef(sessionId);
  const current = (await store.getRef(name)) ?? null;
  if (isPrivate === (current !== null)) return;
  const head = await store.getRef(headRef(sessionId));
  if (!head) throw new FerryError('session/not-found', `Session ${sessionId} is not in this store; nothing to mark.`);
  await store.setRef({ name, expect: current, next: isPrivate ? head : null, reason: isPrivate ? 'marked private' : 'marked not private' });
}

export async function isSessionPrivate(store: Store, sessionId: string): Promise<boolean> {
  assertSessionId(sessionId);
  return (await store.getRef(privateRef(sessionId))) !== undefined;
}

/** The refusal for a private session: what it cannot do, and how to change that. */
export function privateSession(action: LeaveAction): FerryError {
  return new FerryError('session/private', `This session is private: it never leaves this device, so it ${REFUSAL[action]}. Turn off "Private" for this session first.`, { details: { action } });
}

/** Throws session/private when session `sessionId` is private. */
export async function assertMayLeave(store: Store, sessionId: string, action: LeaveAction): Promise<void> {
  if (await isSessionPrivate(store, sessionId)) throw privateSession(action);
}
