/**
 * A cap on the share of a CPU an engine may use on this device ("Ferry may use at most N% of this device"): a
 * phone offering itself as a node, or a laptop whose owner needs it for something else, keeps working — only
 * slower, and cooler. Like a duty cycle: every stretch of work the engine does (a prefill, a token) is followed by
 * an idle pause so that work ÷ (work + pause) = share. The device really is idle in the pauses, so a capped
 * engine behaves as a proportionally slower device, and the placement policy measures and reacts to it as such.
 * The share can change mid-generation; the next token obeys it.
 */
import { FerryError } from '../errors.ts';
import type { Engine, GenerateEvent, GenerateRequest, GenerationStats, VerifyRequest, VerifyResult } from './engine.ts';

export interface CpuShare {
  /** In (0, 1]; 1 is uncapped. */
  get(): number;
  set(share: number): void;
}

export function cpuShare(initial = 1): CpuShare {
  let share = check(initial);
  return { get: () => share, set: (s) => void (share = check(s)) };
}

function check(share: number): number {
  if (!(share > 0 && share <= 1)) throw new FerryError('llm/bad-request', `A CPU share is a fraction in (0, 1] (1 = all of it); got ${share}.`);
  return share;
}

/** Where the pacing reads the time and waits: the platform's clock and timers, or a test's virtual ones. */
export interface PaceClock {
  now(): number;
  /** Waits `ms`, or less when `signal` aborts. */
  pause(ms: number, signal: AbortSignal | undefined): Promise<void>;
}

const realClock: PaceClock = { now: () => performance.now(), pause };

/** `engine` with its generations paced to `share` of the CPU. Everything else passes through. */
export function withCpuShare(engine: Engine, share: CpuShare, clock: PaceClock = realClock): Engine {
  return {
    info: engine.info,
    tokenize: (text, options) => engine.tokenize(text, options),
    detokenize: (ids) => engine.detokenize(ids),
    generate: (request) => paced(engine, request, share, clock),
    ...(engine.verify ? { verify: (request: VerifyRequest) => pacedVerify(engine, request, share, clock) } : {}),
    ...(engine.saveKv ? { saveKv: (slot: string) => engine.saveKv!(slot) } : {}),
    ...(engine.loadKv ? { loadKv: (slot: string, state: Parameters<NonNullable<Engine['loadKv']>>[1]) => engine.loadKv!(slot, state) } : {}),
    ...(engine.releaseSlot ? { releaseSlot: (slot: string) => engine.releaseSlot!(slot) } : {}),
    ...(engine.slotTokens ? { slotTokens: (slot: string) => engine.slotTokens!(slot) } : {}),
    dispose: () => engine.dispose(),
  };
}

/**
 * Pauses after each token. Engines are pulled, so their own clocks already count the pauses — except that the
 * pause after the first token (whose work was mostly the prefill) lands in their decode time: the done event's
 * timings move it to the prefill, so both measured speeds are the capped ones.
 */
async function* paced(engine: Engine, request: GenerateRequest, share: CpuShare, clock: PaceClock): AsyncGenerator<GenerateEvent> {
  const it = engine.generate(request)[Symbol.asyncIterator]();
  let prefillPause = 0;
  // Timers keep whole milliseconds: a pause can end up to ~1 ms early (or late), which at a token's ~1 ms of work
  // would loosen the cap by a third. What a pause falls short of (or overshoots) is carried into the next one.
  let owed = 0;
  for (let first = true; ; first = false) {
    const t0 = clock.now();
    const next = await it.next();
    if (next.done) return;
    const event = next.value;
    if (event.type === 'done') {
      yield { ...event, stats: prefillPaused(event.stats, prefillPause) };
      continue;
    }
    const s = share.get();
    if (s < 1) {
      const ms = (clock.now() - t0) * (1 / s - 1) + owed;
      const p0 = clock.now();
      await clock.pause(ms, request.signal);
      const paused = clock.now() - p0;
      owed = ms - paused;
      if (first) prefillPause = paused;
    } else {
      owed = 0;
    }
    yield event;
  }
}

/** A verification is one stretch of work (a forward pass over context + draft): the pause follows it. */
async function pacedVerify(engine: Engine, request: VerifyRequest, share: CpuShare, clock: PaceClock): Promise<VerifyResult> {
  const t0 = clock.now();
  const result = await engine.verify!(request);
  const s = share.get();
  if (s < 1) await clock.pause((clock.now() - t0) * (1 / s - 1), request.signal);
  return result;
}

function prefillPaused(stats: GenerationStats, ms: number): GenerationStats {
  if (ms === 0) return stats;
  const prefillMs = stats.prefillMs + ms;
  const decodeMs = Math.max(0, stats.decodeMs - ms);
  return {
    ...stats,
    prefillMs,
    decodeMs,
    ttftMs: stats.ttftMs + ms,
    prefillTps: prefillMs > 0 ? (stats.prefillTps * stats.prefillMs) / prefillMs : stats.prefillTps,
    decodeTps: decodeMs > 0 ? (stats.completionTokens / decodeMs) * 1000 : stats.decodeTps,
  };
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
