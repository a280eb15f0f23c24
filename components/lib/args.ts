/**
 * Argument checking for tool components. A tool's `invoke` gets JSON text written by a model; every problem becomes
 * a thrown string (the WIT `err`), worded so the model can correct its next call. Never a trap: a trap kills the
 * instance, an error message lets the agent go on.
 */

export type Args = Record<string, unknown>;

/** Parses the JSON argument object and checks that `op` is one of `ops`. */
export function parseArgs(text: string, ops: readonly string[]): Args & { op: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw 'The arguments are not valid JSON.';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw `The arguments must be a JSON object with an "op" (${quoteList(ops)}).`;
  const args = value as Args;
  if (typeof args.op !== 'string' || !ops.includes(args.op)) throw `Unknown op ${JSON.stringify(args.op)}; use ${quoteList(ops)}.`;
  return args as Args & { op: string };
}

export function quoteList(items: readonly string[]): string {
  const quoted = items.map((i) => `"${i}"`);
  return quoted.length <= 1 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
}

export function str(args: Args, key: string, opts: { maxLength?: number; allowEmpty?: boolean } = {}): string {
  const v = args[key];
  if (typeof v !== 'string') throw `"${key}" must be a string.`;
  if (!opts.allowEmpty && v === '') throw `"${key}" must not be empty.`;
  if (opts.maxLength !== undefined && v.length > opts.maxLength) throw `"${key}" is ${v.length} characters long; at most ${opts.maxLength} are allowed.`;
  return v;
}

export function optStr(args: Args, key: string, opts: { maxLength?: number; allowEmpty?: boolean } = {}): string | undefined {
  return args[key] === undefined || args[key] === null ? undefined : str(args, key, opts);
}

export function optInt(args: Args, key: string, min: number, max: number): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw `"${key}" must be an integer.`;
  if (v < min || v > max) throw `"${key}" must be between ${min} and ${max}.`;
  return v;
}

export function int(args: Args, key: string, min: number, max: number): number {
  const v = optInt(args, key, min, max);
  if (v === undefined) throw `"${key}" is required (an integer).`;
  return v;
}

export function optBool(args: Args, key: string): boolean | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw `"${key}" must be true or false.`;
  return v;
}

/** Cuts text to `max` characters, saying how much was left out, so a result never floods the model's context. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}\n… [${text.length - max} more characters not shown]`;
}
