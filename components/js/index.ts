/**
 * `js`: evaluates JavaScript in the component's own QuickJS, with console output, errors and a step budget. Code is
 * instrumented first (instrument.ts) so endless loops stop with a readable error; the host's time and memory limits
 * on a tool call stay the backstop. What the code defines lives in this instance's globals — checkpointed with its
 * memory like any other component state.
 */
import { optInt, parseArgs, str, type Args } from '../lib/args.ts';
import { instrument } from './instrument.ts';
import { inspect } from './inspect.ts';
import { installGlobals, runGlobal } from './sandbox.ts';
import { jsSpec } from './spec.ts';

const CODE_LIMIT = 64 * 1024;
const RESULT_LIMIT = 16_000;
const DEFAULT_BUDGET = 1_000_000;
const OPS = ['eval', 'globals', 'reset'] as const;

installGlobals();
/** The globals that exist before any user code runs; everything else was defined by a call. */
const builtins = new Set(Object.getOwnPropertyNames(globalThis));

export function describe() {
  return { name: jsSpec.name, description: jsSpec.description, argsSchema: JSON.stringify(jsSpec.parameters), capabilities: [] as string[] };
}

/** The ok value is JSON text; a thrown string becomes the WIT `err` — a message meant for the model. */
export function invoke(text: string): string {
  try {
    return JSON.stringify(run(parseArgs(text, OPS)));
  } catch (err) {
    throw typeof err === 'string' ? err : `The sandbox failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function run(args: Args & { op: string }): unknown {
  switch (args.op) {
    case 'eval': return evaluate(str(args, 'code', { maxLength: CODE_LIMIT }), optInt(args, 'budget', 1, 50_000_000) ?? DEFAULT_BUDGET);
    case 'globals': return { globals: userGlobals().map((name) => ({ name, value: clipped(inspect((globalThis as Record<string, unknown>)[name], 1), 200) })) };
    case 'reset': {
      const names = userGlobals();
      for (const name of names) {
        // var and function declarations are not deletable: clearing them is the closest to forgetting.
        if (!Reflect.deleteProperty(globalThis, name)) (globalThis as Record<string, unknown>)[name] = undefined;
      }
      return { forgotten: names };
    }
    default: throw `Unknown op "${args.op}".`;
  }
}

function evaluate(code: string, budget: number): unknown {
  if (code.includes('__ferry_')) throw 'Identifiers starting with "__ferry_" are reserved by the sandbox; rename them.';
  let prepared: string;
  try {
    prepared = instrument(code);
  } catch (err) {
    throw `SyntaxError: ${err instanceof Error ? err.message : String(err)}`;
  }
  const out = runGlobal(prepared, budget);
  const consoleText = out.console.length > 0 ? `\nconsole output:\n${out.console.join('\n')}` : '';
  if (!out.ok) throw clipped(`${out.text}${consoleText}`, RESULT_LIMIT);
  return { result: clipped(out.text, RESULT_LIMIT), console: out.console, steps: out.steps };
}

function userGlobals(): string[] {
  return Object.getOwnPropertyNames(globalThis).filter((n) => !builtins.has(n) && !n.startsWith('__ferry_'));
}

function clipped(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}
