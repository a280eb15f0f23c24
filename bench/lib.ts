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

/**
 * Counts the CPU time the rest of the machine uses (Linux's /proc; elsewhere nothing): a figure that needs every core
 * at once, such as llama.cpp on two threads of a two-core machine, is only meaningful next to what others took.
 * `otherCores()`: the cores other processes kept busy, on average, over the spans measured so far.
 */
export function otherCpuMeter(): { measure<T>(fn: () => Promise<T>): Promise<T>; otherCores(): number | undefined } {
  let other = 0;
  let wall = 0;
  let available = true;
  return {
    async measure(fn) {
      // This process's tree is sampled while fn runs: Chromium's renderers are killed with it at close, and a
      // killed parent leaves them to init, so their time never reaches this process's children's totals.
      let last = await cpuTicks();
      let ours = 0;
      let busy = 0;
      let sampling = Promise.resolve();
      const sample = async () => {
        const now = await cpuTicks();
        if (!now || !last) {
          available = false;
          return;
        }
        busy += now.machine - last.machine;
        for (const [pid, ticks] of now.ours) ours += ticks - (last.ours.get(pid) ?? 0);
        last = now;
      };
      const timer = setInterval(() => (sampling = sampling.then(sample)), 200);
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        clearInterval(timer);
        await sampling.then(sample);
        wall += (performance.now() - t0) / 1000;
        other += (busy - ours) / USER_HZ;
      }
    },
    otherCores: () => (available && wall > 0 ? Math.max(0, other / wall) : undefined),
  };
}

/** /proc counts in USER_HZ, 100 on Linux. */
const USER_HZ = 100;

/** Busy ticks of the machine, and of each live process of this process's tree. */
async function cpuTicks(): Promise<{ machine: number; ours: Map<number, number> } | undefined> {
  const { readFile, readdir } = await import('node:fs/promises');
  try {
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    const [user, nice, system, , , irq, softirq, steal] = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    const machine = user! + nice! + system! + irq! + softirq! + steal!;
    const children = new Map<number, number[]>();
    const ticks = new Map<number, number>();
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
      if (stat === undefined) continue;
      // After "(comm) ": state ppid … utime stime (fields 14 and 15 of proc(5)).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(entry);
      const parent = Number(fields[1]);
      children.set(parent, [...(children.get(parent) ?? []), pid]);
      ticks.set(pid, Number(fields[11]) + Number(fields[12]));
    }
    const ours = new Map<number, number>();
    const stack = [process.pid];
    while (stack.length > 0) {
      const pid = stack.pop()!;
      ours.set(pid, ticks.get(pid) ?? 0);
      stack.push(...(children.get(pid) ?? []));
    }
    return { machine, ours };
  } catch {
    return undefined;
  }
}
