import * as v from 'valibot';
import { FerryError, type ErrorCode } from '../errors.ts';

/** Validates untrusted data against a wire schema; the error names the first field that was wrong and why. */
export function parseWire<S extends v.GenericSchema>(schema: S, value: unknown, what: string, code: ErrorCode = 'protocol/bad-request'): v.InferOutput<S> {
  const parsed = v.safeParse(schema, value);
  if (parsed.success) return parsed.output;
  const issue = parsed.issues[0];
  const where = issue?.path?.map((p) => String(p.key)).join('.');
  throw new FerryError(code, `${what} is invalid${where ? ` at "${where}"` : ''}: ${issue?.message ?? 'does not match the schema'}.`);
}
