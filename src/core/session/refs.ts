import { FerryError } from '../errors.ts';
import { isBranchName, isComponentName } from './schema.ts';

/** Where a session lives in a store's ref namespace: one branch ref per branch plus the current-branch head. */
export const sessionPrefix = (sessionId: string): string => `sessions/${sessionId}/`;
export const branchRef = (sessionId: string, branch: string): string => `sessions/${sessionId}/branches/${branch}`;
export const headRef = (sessionId: string): string => `sessions/${sessionId}/head`;

const SESSION_ID = /^[0-9a-f]{32}$/;

export function assertSessionId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || !SESSION_ID.test(id)) {
    throw new FerryError('session/bad-id', `Invalid session id ${JSON.stringify(String(id).slice(0, 80))}: expected 32 lower-case hex characters.`);
  }
}

export function assertBranchName(name: unknown): asserts name is string {
  if (!isBranchName(name)) {
    throw new FerryError('session/bad-branch-name', `Invalid branch name ${JSON.stringify(String(name).slice(0, 80))}: use 1–48 letters, digits, ".", "_" or "-", starting with a letter or digit.`);
  }
}

export function assertComponentName(name: unknown): asserts name is string {
  if (!isComponentName(name)) {
    throw new FerryError('session/bad-component-name', `Invalid component name ${JSON.stringify(String(name).slice(0, 80))}: use 1–128 letters, digits or "._:@/+-", starting with a letter or digit.`);
  }
}

/** What a ref under a session prefix holds, or undefined for a name that is not part of a session. */
export function parseSessionRef(name: string): { sessionId: string; kind: 'branch'; branch: string } | { sessionId: string; kind: 'head' } | undefined {
  const m = /^sessions\/([0-9a-f]{32})\/(?:head|branches\/([^/]+))$/.exec(name);
  if (!m) return undefined;
  if (m[2] === undefined) return { sessionId: m[1]!, kind: 'head' };
  return isBranchName(m[2]) ? { sessionId: m[1]!, kind: 'branch', branch: m[2] } : undefined;
}

export function newSessionId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
