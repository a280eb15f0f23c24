/**
 * A virtual clock for simulating schedules: `sleep` waits in virtual time, `run` drives time forward until a
 * promise settles, firing timers in time order (ties in creation order). Runs in microseconds of real time per
 * event, deterministically. Used by the placement simulator and by tests; Web-standard APIs only.
 */
import { FerryError } from '../errors.ts';

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fire: () => void;
  cancelled: boolean;
}

const macrotask = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

export class VirtualClock {
  #now = 0;
  #seq = 0;
  #timers: Timer[] = [];

  now = (): number => this.#now;

  /** Resolves after `ms` of virtual time; rejects with the signal's reason when aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer: Timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fire: resolve, cancelled: false };
      this.#timers.push(timer);
      signal?.addEventListener('abort', () => {
        timer.cancelled = true;
        reject(signal.reason);
      }, { once: true });
    });
  }

  /** Runs `fn` at virtual time `at` (or now, if that has passed). */
  at(at: number, fn: () => void): void {
    this.#timers.push({ at: Math.max(at, this.#now), seq: this.#seq++, fire: fn, cancelled: false });
  }

  /** Advances virtual time, timer by timer, until `work` settles. */
  async run<T>(work: Promise<T>): Promise<T> {
    const progress = { settled: false };
    const watched = work.finally(() => {
      progress.settled = true;
    });
    watched.catch(() => {});
    for (;;) {
      await macrotask();
      if (progress.settled) return watched;
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      if (this.#timers.length === 0) throw new FerryError('parallel/stalled', 'Simulation stalled: nothing is scheduled and the work has not settled.');
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const timer = this.#timers.shift()!;
      this.#now = timer.at;
      timer.fire();
    }
  }
}
