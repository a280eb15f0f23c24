/**
 * The error catalogue: every code is "area/what" with an HTTP status and a meaning; an error crosses a boundary
 * (JSON, postMessage) with its code; a code this build does not know (a newer relay's) arrives as
 * protocol/unknown-error with the original kept.
 */
import { describe, expect, test } from 'vitest';
import { ERROR_CODES, FerryError, errorCodeOf, isErrorCode, isFerryError } from '../../src/core/errors.ts';
import { statusFor } from '../../server/relay/errors.ts';

describe('the error catalogue', () => {
  test('declares each code once, as area/what, with a status and a meaning', () => {
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[a-z]+\/[a-z0-9]+(?:-[a-z0-9]+)*$/);
      expect(info.status, code).toBeGreaterThanOrEqual(400);
      expect(info.status, code).toBeLessThan(600);
      expect(info.meaning.length, code).toBeGreaterThan(10);
    }
    expect(statusFor('relay/unknown-snapshot')).toBe(404);
    expect(statusFor('store/unavailable')).toBe(503);
    expect(statusFor('store/write-failed')).toBe(500);
    expect(statusFor('snapshot/bad-object')).toBe(400);
  });

  test('an error keeps its code, message, details and cause across JSON', () => {
    const err = new FerryError('relay/unknown-run', 'There is no run r1 on this relay.', { details: { run: 'r1' }, cause: new FerryError('store/missing-object', 'gone') });
    const back = FerryError.fromJSON(JSON.parse(JSON.stringify(err)));
    expect(back).toMatchObject({ code: 'relay/unknown-run', message: err.message, details: { run: 'r1' } });
    expect(isFerryError(back.cause, 'store/missing-object')).toBe(true);
    expect(isFerryError(back, 'relay/')).toBe(true);
  });

  test('a code from another build arrives as protocol/unknown-error, its own code kept in the details', () => {
    expect(isErrorCode('relay/unknown-run')).toBe(true);
    expect(isErrorCode('relay/from-the-future')).toBe(false);
    expect(errorCodeOf('relay/from-the-future')).toBe('protocol/unknown-error');
    const back = FerryError.fromJSON({ name: 'FerryError', code: 'relay/from-the-future', message: 'A newer relay refused this.' });
    expect(back).toMatchObject({ code: 'protocol/unknown-error', message: 'A newer relay refused this.', details: { code: 'relay/from-the-future' } });
  });
});
