/**
 * Tools run in this thread: the cheapest way to call a tool, but a call cannot be interrupted here — a tool that
 * must be stopped when it runs too long runs in its own worker instead (tool-worker.ts, the same ToolHost shape).
 * The memory limit is checked after each call on the component's memories; a tool over it fails the call.
 */
import { FerryError } from '../errors.ts';
import type { ComponentInstance } from './instance.ts';
import type { ToolHost, ToolOutcome } from './loop.ts';
import { resultError, toolExportsOf, type ToolInfo } from './wit.ts';

export interface ToolLimits {
  /** Wall-clock limit of one call (enforced where the tool runs in a worker that can be terminated). */
  timeMs: number;
  /** Largest total size of the tool's linear memories after a call. */
  memoryBytes: number;
}

export const DEFAULT_TOOL_LIMITS: ToolLimits = { timeMs: 10_000, memoryBytes: 256 << 20 };

/** Calls the tool's invoke(); the WIT err case is the tool's own answer, a trap is a failed call. */
export function invokeTool(instance: ComponentInstance, info: ToolInfo, args: string, limits: ToolLimits): ToolOutcome {
  const tool = toolExportsOf(instance);
  let outcome: ToolOutcome;
  try {
    outcome = { ok: true, output: tool.invoke(args) };
  } catch (err) {
    const message = resultError(err);
    if (message === undefined) {
      throw new FerryError('runtime/tool-trapped', `Tool "${info.name}" crashed (${err instanceof Error ? err.message : String(err)}); its state from before the call is restored.`, { cause: err });
    }
    outcome = { ok: false, output: message };
  }
  const bytes = instance.memoryBytes();
  if (bytes > limits.memoryBytes) {
    throw new FerryError('runtime/tool-memory-limit', `Tool "${info.name}" grew to ${bytes} bytes of memory, over its limit of ${limits.memoryBytes}; the call is refused and its state restored.`, {
      details: { tool: info.name, bytes, limit: limits.memoryBytes },
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
