/**
 * Calling a tool under its limits (limits.ts). In this thread (inProcessTool) a call cannot be interrupted — a tool
 * that must be stopped when it runs too long runs in its own worker instead (tool-worker.ts, the same ToolHost
 * shape) — but its memory is capped while it runs (the module's memory maximum, memory-cap.ts) and its answer's
 * size is checked, wherever it runs.
 */
import { FerryError } from '../errors.ts';
import type { ComponentInstance } from './instance.ts';
import { DEFAULT_TOOL_LIMITS, type ToolLimits } from './limits.ts';
import type { ToolHost, ToolOutcome } from './loop.ts';
import { resultError, toolExportsOf, type ToolInfo } from './wit.ts';

export { DEFAULT_TOOL_LIMITS, toolLimits, type ToolLimits } from './limits.ts';

/**
 * A failed call — a trap, or the tool's own error answer: QuickJS reports a failed allocation as an "out of memory"
 * exception — that says it ran out of memory, or leaves the memory within a page of its cap, failed because the cap
 * held: it is the memory limit, and the tool's state from before the call is restored.
 */
const WASM_PAGE = 65_536;
const outOfMemory = (instance: ComponentInstance, limits: ToolLimits, message: string | undefined, err: unknown): boolean =>
  instance.memoryBytes() + WASM_PAGE > limits.memoryBytes || /out of memory/i.test(message ?? (err instanceof Error ? err.message : String(err)));

const memoryLimit = (info: ToolInfo, bytes: number, limits: ToolLimits): FerryError =>
  new FerryError('runtime/tool-memory-limit', `Tool "${info.name}" needed more than its memory limit of ${limits.memoryBytes} bytes (it holds ${bytes}); the call is stopped and its state restored.`, {
    details: { tool: info.name, bytes, limit: limits.memoryBytes },
  });

/** Calls the tool's invoke(); the WIT err case is the tool's own answer, a trap is a failed call. */
export function invokeTool(instance: ComponentInstance, info: ToolInfo, args: string, limits: ToolLimits): ToolOutcome {
  const tool = toolExportsOf(instance);
  let outcome: ToolOutcome;
  try {
    outcome = { ok: true, output: tool.invoke(args) };
  } catch (err) {
    const message = resultError(err);
    if (outOfMemory(instance, limits, message, err)) throw memoryLimit(info, instance.memoryBytes(), limits);
    if (message === undefined) {
      throw new FerryError('runtime/tool-trapped', `Tool "${info.name}" crashed (${err instanceof Error ? err.message : String(err)}); its state from before the call is restored.`, { cause: err });
    }
    outcome = { ok: false, output: message };
  }
  const bytes = instance.memoryBytes();
  if (bytes > limits.memoryBytes) throw memoryLimit(info, bytes, limits);
  // Characters are at most 3 UTF-8 bytes each (a surrogate pair, two characters, is 4): no encoding needed below a third.
  const size = outcome.output.length * 3 <= limits.outputBytes ? 0 : new TextEncoder().encode(outcome.output).length;
  if (size > limits.outputBytes) {
    throw new FerryError('runtime/tool-output-limit', `Tool "${info.name}" answered with ${size} bytes, over its limit of ${limits.outputBytes}; the call is refused and its state restored.`, {
      details: { tool: info.name, bytes: size, limit: limits.outputBytes },
    });
  }
  return outcome;
}

/** A ToolHost over a component instance in this thread. */
export function inProcessTool(instance: ComponentInstance, limits: Partial<ToolLimits> = {}): ToolHost {
  const all = { ...DEFAULT_TOOL_LIMITS, ...limits };
  const info = toolExportsOf(instance).describe();
  return {
    info,
    invoke: async (args) => invokeTool(instance, info, args, all),
  };
}
