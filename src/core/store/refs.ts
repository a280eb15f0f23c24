import { FerryError } from '../errors.ts';

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_REF_NAME = 200;

/** True for names like "sessions/abc/branches/main": slash-separated segments of [A-Za-z0-9._-], no "..". */
export function isRefName(name: unknown): name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_REF_NAME) return false;
  return name.split('/').every((s) => SEGMENT.test(s) && !s.includes('..'));
}

export function assertRefName(name: unknown): asserts name is string {
  if (!isRefName(name)) {
    throw new FerryError(
      'store/bad-ref-name',
      `Invalid ref name ${JSON.stringify(String(name).slice(0, 80))}: use slash-separated segments of letters, digits, ".", "_" or "-" (at most ${MAX_REF_NAME} characters).`,
    );
  }
}
