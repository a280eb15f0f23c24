/**
 * A tool call's limits: what the tool declares in its manifest (manifest.ts), else these defaults, and never more
 * than the host allows (a phone may hold its tools to less). Enforced the same in the browser and on Node: memory
 * by the module's own memory maximum (memory-cap.ts: a call cannot grow past it), time by terminating the worker the
 * tool runs in (tool-worker.ts), output by refusing an answer that is too long (tools.ts).
 */
import type { ComponentManifest } from './manifest.ts';

export interface ToolLimits {
  /** Wall-clock limit of one call (enforced where the tool runs in a worker that can be terminated). */
  timeMs: number;
  /** Most the tool's linear memories may hold; a call cannot grow them past it. */
  memoryBytes: number;
  /** Longest answer of one call, in bytes of UTF-8. */
  outputBytes: number;
}

export const DEFAULT_TOOL_LIMITS: ToolLimits = { timeMs: 10_000, memoryBytes: 256 << 20, outputBytes: 1 << 20 };

/** The limits a call of this tool runs under: its declared ones (or the defaults), lowered to `host`'s where lower. */
export function toolLimits(manifest: Pick<ComponentManifest, 'limits'>, host: Partial<ToolLimits> = {}): ToolLimits {
  const declared = { ...DEFAULT_TOOL_LIMITS, ...manifest.limits };
  const lower = (key: keyof ToolLimits): number => Math.min(declared[key], host[key] ?? Infinity);
  return { timeMs: lower('timeMs'), memoryBytes: lower('memoryBytes'), outputBytes: lower('outputBytes') };
}
