/**
 * The sandbox's global environment: `console` that records lines, a step counter the instrumented code calls, and a
 * `Date` without a clock. WASI is stubbed in components, so reading the clock would trap and kill the instance; here
 * it throws an error the model can read instead.
 */
import { inspect } from './inspect.ts';
import { ENTER, EXIT, TICK } from './instrument.ts';

export const OUTPUT_LIMITS = { lines: 200, chars: 20_000 };
/**
 * Nested calls of sandboxed functions. QuickJS recurses on the wasm stack; V8 overflows it at about 2,800 levels
 * of a trivial function, and that is a trap, so the sandbox stops far earlier with a catchable RangeError.
 */
export const MAX_DEPTH = 400;

/** Thrown by the step counter; not an Error, so `catch (e) { e.message }` in user code learns nothing useful from it. */
const BUDGET_SPENT = { budgetSpent: true };

let remaining = 0;
let used = 0;
let spent = false;
let depth = 0;
let lines: string[] = [];
let chars = 0;
let dropped = 0;

function write(level: string, args: unknown[]): void {
  const text = (level === 'log' || level === 'info' ? '' : `[${level}] `) + args.map((a) => inspect(a)).join(' ');
  if (lines.length >= OUTPUT_LIMITS.lines || chars + text.length > OUTPUT_LIMITS.chars) { dropped++; return; }
  lines.push(text);
  chars += text.length;
}

const sandboxConsole = Object.freeze({
  log: (...a: unknown[]) => write('log', a),
  info: (...a: unknown[]) => write('info', a),
  debug: (...a: unknown[]) => write('debug', a),
  warn: (...a: unknown[]) => write('warn', a),
  error: (...a: unknown[]) => write('error', a),
});

function noClock(): never {
  throw new Error('The sandbox has no clock: Date.now() and new Date() without arguments are not available; pass a date, e.g. new Date("2024-01-01").');
}

/** Installs the globals once, when the component is initialised (the result is part of its pre-built image). */
export function installGlobals(): void {
  const RealDate = Date;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const SafeDate = function (this: unknown, ...args: any[]) {
    if (!new.target || args.length === 0) noClock();
    return Reflect.construct(RealDate, args, new.target);
  } as unknown as DateConstructor;
  Object.defineProperties(SafeDate, {
    prototype: { value: RealDate.prototype },
    UTC: { value: RealDate.UTC },
    parse: { value: RealDate.parse },
    now: { value: noClock },
  });
  Object.defineProperty(RealDate.prototype, 'constructor', { value: SafeDate });
  const g = globalThis as Record<string, unknown>;
  g.Date = SafeDate;
  g.console = sandboxConsole;
  const step = () => {
    used++;
    if (--remaining < 0) { spent = true; throw BUDGET_SPENT; }
  };
  const fixed = (value: () => void) => ({ value, writable: false, configurable: false, enumerable: false });
  Object.defineProperty(globalThis, TICK, fixed(step));
  Object.defineProperty(globalThis, ENTER, fixed(() => {
    step();
    if (depth >= MAX_DEPTH) throw new RangeError(`Maximum call depth of ${MAX_DEPTH} exceeded (the sandbox's limit): look for unbounded recursion.`);
    depth++;
  }));
  Object.defineProperty(globalThis, EXIT, fixed(() => { depth--; }));
}

export interface RunOutcome {
  ok: boolean;
  /** The value, or the error text. */
  text: string;
  console: string[];
  steps: number;
  budgetSpent: boolean;
}

/** Runs already-instrumented code at global scope (indirect eval), with a fresh console and step budget. */
export function runGlobal(code: string, budget: number): RunOutcome {
  remaining = budget;
  used = 0;
  depth = 0;
  spent = false;
  lines = [];
  chars = 0;
  dropped = 0;
  let ok = true;
  let text: string;
  try {
    text = inspect((0, eval)(code));
  } catch (err) {
    ok = false;
    text = err === BUDGET_SPENT ? '' : describeError(err);
  }
  if (spent) {
    ok = false;
    text = `Stopped: the code used its budget of ${budget} steps (loop iterations and function calls). Look for an endless loop, or pass a larger "budget".`;
  }
  if (dropped > 0) lines.push(`… ${dropped} more console lines not shown`);
  return { ok, text, console: lines, steps: used, budgetSpent: spent };
}

/** "TypeError: x is not a function (line 3)": the stack's line numbers match the model's code (see instrument.ts). */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return `Uncaught ${inspect(err, 1)}`;
  const stack = String(err.stack ?? '');
  const at = /<input>:(\d+)/.exec(stack);
  return `Uncaught ${err.name}: ${err.message}${at ? ` (line ${at[1]})` : ''}`;
}
