/**
 * The simulated world of the placement bench (bench/placement.ts), kept apart from what the policy believes: the
 * policy sees each node's measured nominal speeds; the world runs each step at speeds of its own — nominal × noise
 * (per node, per step, seeded) × warm-up (a cold engine's first step) × slowdowns the policy is not told of (a busy
 * laptop, a contended cloud GPU, a throttling phone) — and with each engine's capabilities as the real adapters
 * report them (src/browser/llm/*, server/llm/node-llama-engine.ts). Every draw comes from a PRNG seeded by
 * (seed, key), so one seed is one world, for the policy, the baselines and the oracle alike.
 */
import { seededRandom } from '../src/core/random.ts';

// ------------------------------------------------------------------------------------------------ engines

/**
 * What the engines really do with a session's KV, as their adapters report it:
 * - web-llm (src/browser/llm/webllm-engine.ts): `kvState: false`; one sequence that can only grow (appendPlan): a
 *   prompt that extends it exactly prefills only the new tokens, anything else (a dropped source, a compaction, a
 *   rollback) starts the sequence over and prefills the whole prompt. No `verify`.
 * - the CPU engine (src/browser/llm/cpu-engine.ts): `kvState: false`; one sequence, cut back to the longest common
 *   prefix of the next prompt (kvRemove), so a drop keeps what precedes it. Has `verify`.
 * - node-llama-cpp (server/llm/node-llama-engine.ts): `kvState: true` (saveKv/loadKv: a KV cache can be shipped to
 *   or from it); slots keep the longest common prefix. Has `verify`.
 */
export type EngineName = 'web-llm' | 'wllama' | 'node-llama-cpp';

export interface EngineCaps {
  readonly kvState: boolean;
  /** On a prompt that does not extend the cached sequence: keep the common prefix, or start over. */
  readonly onDivergence: 'keep-common-prefix' | 'start-over';
  readonly verify: boolean;
}

export const ENGINES: Readonly<Record<EngineName, EngineCaps>> = {
  'web-llm': { kvState: false, onDivergence: 'start-over', verify: false },
  wllama: { kvState: false, onDivergence: 'keep-common-prefix', verify: true },
  'node-llama-cpp': { kvState: true, onDivergence: 'keep-common-prefix', verify: true },
};

/** Tokens an engine still holds of a cached sequence of `cached` tokens when the next prompt shares only `common`. */
export function keptAfterDivergence(engine: EngineName, cached: number, common: number): number {
  return ENGINES[engine].onDivergence === 'keep-common-prefix' ? Math.min(cached, common) : 0;
}

// ------------------------------------------------------------------------------------------------ randomness

function hash(...parts: (number | string)[]): number {
  let h = 2166136261;
  for (const p of parts.join('|')) h = Math.imul(h ^ p.charCodeAt(0), 16777619);
  return h >>> 0;
}

export interface WorldRandom {
  /** Uniform in [0, 1), the same for the same seed and key. */
  draw(...key: (number | string)[]): number;
  uniform(lo: number, hi: number, ...key: (number | string)[]): number;
  /** Log-normal with the given median and shape. */
  logNormal(median: number, sigma: number, ...key: (number | string)[]): number;
}

export function worldRandom(seed: number): WorldRandom {
  const draw = (...key: (number | string)[]) => seededRandom(hash(seed, ...key))();
  return {
    draw,
    uniform: (lo, hi, ...key) => lo + (hi - lo) * draw(...key),
    logNormal(median, sigma, ...key) {
      const u1 = Math.max(draw(...key, 'a'), 1e-12);
      const u2 = draw(...key, 'b');
      return median * Math.exp(sigma * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2));
    },
  };
}

// ------------------------------------------------------------------------------------------------ true speeds

export interface NodeBehaviour {
  /** Spread of a step's true speed around the nominal one: log-normal shape, median 1. */
  readonly noise: number;
  /** A cold engine (not run for COLD_AFTER_MS): load time before its first step, ms. */
  readonly coldLoadMs: number;
  /** ... and the factor on its speeds during that first step (GPU clocks, shader and kernel caches warming). */
  readonly coldFactor: number;
  /** Busy episodes the policy is not told of: on average every `every` ms, `lasts` ms long, at `factor` speed. */
  readonly busy?: { readonly every: number; readonly lasts: number; readonly factor: number };
  /** Thermal throttling: after `after` ms of continuous generation, `factor` speed. */
  readonly throttle?: { readonly after: number; readonly factor: number };
}

/** An engine that has not run for ten minutes is cold: the browser may have dropped its GPU buffers, the OS paged out its weights (assumption). */
export const COLD_AFTER_MS = 10 * 60_000;

interface Episode {
  readonly start: number;
  readonly end: number;
  readonly factor: number;
}

/**
 * The true speed of nodes over time: the world multiplies a node's nominal prefill and decode speeds by `step`'s
 * factor for a step and by `slowdown` as the step goes on; the policy never sees either.
 */
export class TrueSpeeds {
  readonly #episodes = new Map<string, Episode[]>();

  constructor(
    readonly random: WorldRandom,
    private readonly behaviour: Readonly<Record<string, NodeBehaviour>>,
    horizonMs: number,
  ) {
    for (const [node, b] of Object.entries(behaviour)) this.#episodes.set(node, b.busy ? this.#busy(node, b.busy, horizonMs) : []);
  }

  #busy(node: string, shape: NonNullable<NodeBehaviour['busy']>, horizonMs: number): Episode[] {
    const out: Episode[] = [];
    let t = 0;
    for (let i = 0; t < horizonMs; i++) {
      t += -Math.log(Math.max(this.random.draw('episode-gap', node, i), 1e-9)) * shape.every;
      const len = -Math.log(Math.max(this.random.draw('episode-len', node, i), 1e-9)) * shape.lasts;
      out.push({ start: t, end: t + len, factor: shape.factor });
      t += len;
    }
    return out;
  }

  /** The slowdown at `t` from busy episodes and throttling (`busyFor`: ms of continuous generation so far). */
  slowdown(node: string, t: number, busyFor: number): number {
    const b = this.behaviour[node]!;
    let f = b.throttle && busyFor > b.throttle.after ? b.throttle.factor : 1;
    for (const e of this.#episodes.get(node)!) {
      if (e.start > t) break;
      if (t < e.end) f *= e.factor;
    }
    return f;
  }

  /** This step's noise on `node`: one draw per (node, key), median 1. */
  noise(node: string, key: readonly (number | string)[]): number {
    return this.random.logNormal(1, this.behaviour[node]!.noise, 'speed', node, ...key);
  }

  /** Whether `node`'s engine is cold at `t`, having last run at `lastRan` (undefined: never). */
  cold(node: string, t: number, lastRan: number | undefined): boolean {
    return lastRan === undefined || t - lastRan > COLD_AFTER_MS;
  }

  /**
   * What holds for a whole step on `node` starting at `t` (its last step there at `lastRan`): the factor on its
   * nominal speeds from noise and warm-up, and the load time a cold engine pays first. Slowdowns change within a
   * step: multiply by `slowdown` as it goes.
   */
  step(node: string, t: number, key: readonly (number | string)[], lastRan: number | undefined): { factor: number; coldLoadMs: number } {
    const b = this.behaviour[node]!;
    const cold = this.cold(node, t, lastRan);
    return { factor: this.noise(node, key) * (cold ? b.coldFactor : 1), coldLoadMs: cold ? b.coldLoadMs : 0 };
  }
}
