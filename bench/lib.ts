/**
 * Benchmark plumbing shared by every suite (DESIGN.md §8): a suite returns named figures, the runner prints a
 * table and writes bench/results/<suite>.json. Ratios compare against a baseline measured in the same run.
 */
export interface Figure {
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  ratio?: number;
}

export type Figures = Record<string, Figure>;

export interface Suite {
  name: string;
  description: string;
  run(): Promise<Figures>;
}

/** A figure compared with a baseline measured in the same run; ratio = value / baseline. */
export function compared(value: number, unit: string, baselineName: string, baselineValue: number): Figure {
  return { value, unit, baseline: { name: baselineName, value: baselineValue }, ratio: baselineValue === 0 ? Infinity : value / baselineValue };
}

/** Median wall time in ms of `fn` over `runs` runs after `warmup` unmeasured runs. */
export async function medianMs(fn: () => unknown, runs = 7, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}
