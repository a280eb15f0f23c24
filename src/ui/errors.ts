import { FerryError } from '../core/errors.ts';

/** What the UI shows for a failure: a stable code and a sentence that says what went wrong and what to do. */
export interface UiError {
  code: string;
  message: string;
}

/** Turns anything thrown by any layer into a UiError. Never shows a stack. */
export function describeError(err: unknown): UiError {
  if (err instanceof FerryError) return { code: err.code, message: err.message };
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'QuotaExceededError') {
    return { code: 'store/quota-exceeded', message: 'The browser refused to store more data. Free space (delete old sessions or site data) and retry.' };
  }
  if (name === 'NotAllowedError') {
    return { code: 'app/not-allowed', message: 'The browser did not allow that action (permission denied). Check the site permissions and try again.' };
  }
  const text = err instanceof Error ? err.message : typeof err === 'string' ? err : 'Unknown failure';
  return { code: 'app/unexpected', message: `Something failed unexpectedly: ${text.split('\n')[0]}. Reload the page and try again; your saved sessions are kept.` };
}
