/**
 * Errors are data: a stable `code` ("area/what", e.g. "gguf/bad-magic") that code can branch on, a message a
 * person can act on (what was wrong, what to do), an optional cause, and details that survive serialisation
 * across postMessage, the relay and disk.
 */
import { isErrorCode, type ErrorArea, type ErrorCode } from './error-codes.ts';

export { ERROR_CODES, isErrorCode, type ErrorArea, type ErrorCode } from './error-codes.ts';

export interface SerializedError {
  readonly name: 'FerryError';
  /** A code of this build's catalogue, or of another build's (a newer relay): see `FerryError.fromJSON`. */
  readonly code: string;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: SerializedError | { readonly message: string };
}

export class FerryError extends Error {
  override readonly name = 'FerryError';
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }

  toJSON(): SerializedError {
    const cause = this.cause;
    return {
      name: 'FerryError',
      code: this.code,
      message: this.message,
      ...(this.details ? { details: this.details } : {}),
      ...(cause === undefined
        ? {}
        : { cause: cause instanceof FerryError ? cause.toJSON() : { message: cause instanceof Error ? cause.message : String(cause) } }),
    };
  }

  static fromJSON(data: SerializedError): FerryError {
    const cause = data.cause && 'code' in data.cause ? FerryError.fromJSON(data.cause) : data.cause ? new Error(data.cause.message) : undefined;
    return new FerryError(errorCodeOf(data.code), data.message, {
      ...(cause ? { cause } : {}),
      ...(data.details || !isErrorCode(data.code) ? { details: { ...data.details, ...(isErrorCode(data.code) ? {} : { code: data.code }) } } : {}),
    });
  }
}

/**
 * A code that came from elsewhere (another build, the wire): itself when this build's catalogue has it, else
 * `protocol/unknown-error` (the original is kept in the error's details as `code`).
 */
export function errorCodeOf(code: string): ErrorCode {
  return isErrorCode(code) ? code : 'protocol/unknown-error';
}

/** True when `err` is a FerryError, optionally with the given code or code prefix ("gguf/" matches every gguf error). */
export function isFerryError(err: unknown, code?: ErrorCode | `${ErrorArea}/`): err is FerryError {
  if (!(err instanceof FerryError)) return false;
  if (code === undefined) return true;
  return code.endsWith('/') ? err.code.startsWith(code) : err.code === code;
}
