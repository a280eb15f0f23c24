/**
 * Placement simulator (issue 8): a trace-driven model of a heterogeneous fleet — a phone and a laptop running the
 * model in the browser, and a cloud GPU worker — running the three seed workloads and a mix of private sessions.
 * Every placement is made by the product's own policy (src/core/placement) and the context-parallel job by the
 * product's own scheduler (src/core/parallel); only the world (speeds over time, queues, networks, workloads) is
 * simulated, and it is not the policy's estimate: the policy sees each node's nominal measured speeds, while the world
 * (placement-world.ts) runs each step at its own — per-node noise, a cold engine's load and slow first step, busy
 * episodes and throttling the policy is not told of — with each node's engine doing what the real adapter does with KV
 * (the browser engines report `kvState: false`, so no KV is shipped to or from them; web-llm starts its sequence over
 * when a prompt does not extend it). Deterministic: every random draw comes from a seeded PRNG keyed by (session, step,
 * node, purpose), so the policy, the fixed baselines and the oracle face the very same world.
 *
 * Figures (names fixed by the issue):
 * - cost_vs_cloud: always-cloud cost ÷ policy cost, over every non-private session (private sessions cannot run in the
 *   cloud at all, so counting them would flatter the policy).
 * - p95_vs_local: always-local p95 step latency ÷ policy p95, on the heavy (survey) workload's sessions that may use
 *   any node (private ones must stay local under both; `p95_vs_local_incl_private` counts them too).
 * - p95_vs_oracle: policy p95 ÷ the p95 of an oracle that knows each step's true speeds, queue waits and output length
 *   and picks the best node per step under the same objective and constraints (no hysteresis, no live moves), over
 *   all sessions; `p95_vs_oracle_my_devices` over the sessions limited to the user's own devices.
 * - Every baseline is measured in the same run on the same world: the ratio figures are plain ratios, and the raw
 *   figures they come from carry their baselines (`policy_cost_usd` vs always-cloud, `policy_p95_ms` vs the oracle,
 *   `policy_p95_heavy_ms` vs always-device, `parallel_job_ms_3` vs one node). `p95_vs_device`: always-device p95 ÷
 *   policy p95 over every session (the device in hand runs every step); `oracle_cost_vs_cloud` the oracle's
 *   cost_vs_cloud, for how much of the cost figure is the world's and how much the policy's.
 * - privacy_violations: steps (or parts of steps, after a live move) that ran on a node the session's privacy forbids.
 * - moves_per_session: migrations (between steps and live) per session under the policy.
 * - parallel_speedup_3: survey over 12 sources, one node ÷ three nodes, scheduled by src/core/parallel on a virtual
 *   clock. `parallel_speedup_fleet` adds the honest heterogeneous case: the cloud GPU alone ÷ cloud + laptop + phone.
 *
 * The policy runs with the product's defaults (objective `balanced` at $10/h of the user's time, 20% hysteresis,
 * 0.5 s move cost). The `_fastest` / `_cheapest` figures show the other objectives on the same world; `_own_gpu`
 * the default in a fleet that also has the user's GPU desktop, switched on about half the time — whether a fast free
 * node of one's own changes the cost picture (cost_vs_cloud_own_gpu, p95_vs_local_own_gpu).
 * - `_speculative`: the default in a world where the device in hand may run a step speculatively — drafting with a
 *   1B model of the family, the cloud worker verifying (DESIGN §9) — and `_speculative_same_model` drafting with the
 *   session's own model, as Ferry's runner does today; `_speculative_fastest` the fastest objective there.
 *   speculative_share: the share of steps the policy runs speculatively (oracle_speculative_share: the oracle's);
 *   sampled_speculative_steps: speculative steps of sampled sessions (the podcast's), which must be 0.
 * - cost_goal_usd_h: what the cost goal asks of the user — the highest price of their time (balanced's one knob,
 *   Settings' "Value of your time") at which cost_vs_cloud reaches its goal (1.39), and p95_vs_local_at_cost_goal there;
 *   `_oracle` the same for the oracle.
 */
import { ENGINES, TrueSpeeds, keptAfterDivergence, worldRandom, type EngineName, type NodeBehaviour } from './placement-world.ts';
import {
  DEFAULT_PREFS,
  decide,
  expectedReplyTokens,
  objectiveScore,
  privacyAllows,
  redecideMidGeneration,
  remainingReplyTokens,
  shouldMigrate,
  type NodeKind,
  type NodeProfile,
  type Objective,
  type PendingStep,
  type PlacementPrefs,
  type Privacy,
  type Resume,
} from '../src/core/placement/index.ts';
import { VirtualClock, runParallel, type ParallelNode, type ParallelTask } from '../src/core/parallel/index.ts';
import { compared, type Figures, type Suite } from './lib.ts';

// ------------------------------------------------------------------------------------------------ the fleet
//
// One model everywhere, so a session can move token-identically (DESIGN.md §4): Llama-3.1-8B-Instruct, 4-bit.
// KV bytes per token from the model's config (32 layers × 8 KV heads × 128 dims × K and V × 2 bytes, f16 cache).
const MODEL = 'llama-3.1-8b-instruct-q4';
const KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2;
/** Q4_K_M weights of an 8B model: 4.92 GB (the GGUF's file size as published on Hugging Face). */
const WEIGHT_BYTES = 4.92e9;

interface NodeSpec {
  readonly id: string;
  readonly prefillTps: number;
  readonly decodeTps: number;
  readonly memoryBytes: number;
  readonly rttMs: number;
  readonly bandwidthBps: number;
  readonly pricePer1k: number;
  readonly queueWaitMs: number;
  /** The engine it runs the model on: what it can do with KV (placement-world.ts ENGINES). */
  readonly engine: EngineName;
  /** How its true speed departs from the nominal one, unknown to the policy. */
  readonly behaviour: NodeBehaviour;
  /** A device's speeds with the small draft model of the speculative worlds (DRAFT_MODEL). */
  readonly draft?: { readonly prefillTps: number; readonly decodeTps: number };
}

/**
 * Laptop: Apple M4-class, the model in the browser on WebGPU.
 * - llama.cpp (Metal) on an M4 Mac mini, Llama 3.1 8B Q4_K_M: pp512 = 224.8 tok/s, tg128 = 20.9 tok/s
 *   (github.com/brand-o/normiebench issue #3; the same chip ships in the MacBook Air M4).
 * - WebLLM retains up to ~80% of native speed on the same device (Ruan et al., "WebLLM: A High-Performance In-Browser
 *   LLM Inference Engine", arXiv:2412.15803). We take 80% of native: 180 / 16.7 tok/s.
 * - Home Wi-Fi to the relay: 20 ms RTT, 100 Mbit/s (assumption).
 */
const LAPTOP: NodeSpec = {
  id: 'laptop', prefillTps: 180, decodeTps: 16.7, memoryBytes: 12 * 2 ** 30, rttMs: 20, bandwidthBps: 12.5e6, pricePer1k: 0, queueWaitMs: 0,
  // Llama 3.2 1B Q4 drafting: decode is memory-bound, so ~8B/1.2B ≈ 5× the 8B's rates (assumption).
  draft: { prefillTps: 900, decodeTps: 80 },
  // web-llm on WebGPU. The user gets busy (a build, a video call): episodes every ~10 min, ~2 min long, at 35% speed.
  // Cold: weights from the browser's cache to the GPU and shaders compiled, ~6 s; its first step at 60% (assumptions).
  engine: 'web-llm',
  behaviour: { noise: 0.15, coldLoadMs: 6_000, coldFactor: 0.6, busy: { every: 600_000, lasts: 120_000, factor: 0.35 } },
};

/**
 * Phone: flagship (Snapdragon 8 Gen 3 / A17 Pro class), the model in the browser (wllama on CPU or WebGPU).
 * - ASSUMPTION, anchored on the community llama.cpp A-series and Android runs (github.com/ggml-org/llama.cpp
 *   discussion #4508, issue #4358), which put a 7–8B Q4 model on a flagship phone at roughly 50–60 tok/s prefill and
 *   8–10 tok/s decode natively; the in-browser engine at ~70% of that (below WebLLM's 80% figure: mobile WebGPU and
 *   wasm are less mature). So 40 / 6 tok/s.
 * - Mobile network to the relay: 60 ms RTT, 20 Mbit/s up (assumption).
 */
const PHONE: NodeSpec = {
  id: 'phone', prefillTps: 40, decodeTps: 6, memoryBytes: 8 * 2 ** 30, rttMs: 60, bandwidthBps: 2.5e6, pricePer1k: 0, queueWaitMs: 0,
  // Llama 3.2 1B Q4 drafting, ~5× the 8B's rates as on the laptop (assumption).
  draft: { prefillTps: 200, decodeTps: 30 },
  // wllama on the CPU. Thermal throttling: after 60 s of continuous generation, 60% speed (in line with the
  // sustained-load drops reported for mobile LLM inference). Noisier than the others (background apps, power states).
  // Cold: ~10 s to read 4.9 GB of weights back into memory; its first step at 70% (assumptions).
  engine: 'wllama',
  behaviour: { noise: 0.25, coldLoadMs: 10_000, coldFactor: 0.7, throttle: { after: 60_000, factor: 0.6 } },
};

/**
 * Cloud GPU worker: an OpenAI-compatible upstream serving Llama 3.1 8B.
 * - Price: Together AI's list price for Llama 3.1 8B Instruct Turbo, $0.18 per million tokens, input and output
 *   (together.ai/pricing, 2024–25). Per-token API pricing is the cheap way to buy cloud tokens for one user; a rented
 *   H100 (~$2–3/h on-demand) kept busy by one user's sessions costs far more per token, so this is the conservative
 *   choice for cost_vs_cloud.
 * - Speed: ASSUMPTION of 140 tok/s decode per stream and 8,000 tok/s prefill for an 8B model on an H100 under
 *   shared load (vLLM-class serving; single-stream decode of an 8B model on an H100 is ~150–200 tok/s).
 * - Queue: 300 ms expected wait (assumption); the trace draws a heavy-tailed wait (below).
 * - Path user → relay → worker: 80 ms RTT, 100 MB/s (assumption).
 */
const CLOUD: NodeSpec = {
  id: 'cloud', prefillTps: 8000, decodeTps: 140, memoryBytes: 80 * 2 ** 30, rttMs: 80, bandwidthBps: 100e6, pricePer1k: 0.00018, queueWaitMs: 300,
  // A node-llama-cpp worker, the model always loaded (never cold). Contention on the shared GPU: episodes every
  // ~15 min, ~1 min long, at 40% speed (assumption).
  engine: 'node-llama-cpp',
  behaviour: { noise: 0.1, coldLoadMs: 0, coldFactor: 1, busy: { every: 900_000, lasts: 60_000, factor: 0.4 } },
};

/**
 * Desktop: the user's own gaming PC at home, when it is switched on — the model in the browser on WebGPU.
 * - llama.cpp (CUDA) on an RTX 3080, Llama 3.1 8B Q4_K_M: prompt 3,806.89 tok/s, generation 111.95 tok/s
 *   (github.com/dmatora/LLM-inference-speed-benchmarks issue #12); in the browser at WebLLM's ~80% of native
 *   (arXiv:2412.15803, as for the laptop): 3,045 / 89.6 tok/s.
 * - On only part of the day: on and off in turns of an hour on average (assumption); a step it was running when it
 *   goes off starts again elsewhere from the session's last checkpoint, as on a real node that leaves.
 * - Home fibre to the relay: 15 ms RTT, 40 Mbit/s up (assumption).
 */
const DESKTOP: NodeSpec = {
  id: 'desktop', prefillTps: 3045, decodeTps: 89.6, memoryBytes: 10 * 2 ** 30, rttMs: 15, bandwidthBps: 5e6, pricePer1k: 0, queueWaitMs: 0,
  // web-llm on WebGPU. Someone plays a game on it now and then: every ~30 min, ~5 min long, at 50% speed. Cold:
  // ~4 s, its first step at 60% (assumptions).
  engine: 'web-llm',
  behaviour: { noise: 0.12, coldLoadMs: 4_000, coldFactor: 0.6, busy: { every: 1_800_000, lasts: 300_000, factor: 0.5 } },
};

/**
 * The world a strategy runs in: the nodes there are, and when each is attached. The fleet (phone, laptop,
 * cloud) is the world the named figures come from; `_own_gpu` figures add the desktop.
 */
interface World {
  readonly nodes: readonly NodeSpec[];
  up(node: string, t: number): boolean;
  /** The device in hand may run steps speculatively (it drafts, the cloud worker verifies), drafting with this. */
  readonly speculative?: SpeculativeWorld;
}

/**
 * Speculative worlds: the device drafts, the cloud worker verifies (DESIGN §9). `small`: with a 1B model of the
 * family (Llama 3.2 1B for 3.1 8B), whose drafts the 8B accepts at ~0.7 a token (assumption, in line with the
 * 0.6–0.8 reported for same-family 1B/8B pairs); the true rate varies per step, 0.5–0.85. `same`: with the
 * session's own model, as Ferry's runner drafts today — the policy expects 0.9 (next-step.ts), truly 0.85–0.98 (the
 * engines' arithmetic parts near ties; assumption).
 */
interface SpeculativeWorld {
  readonly draftModel: string;
  readonly acceptance: number;
  readonly trueAcceptance: readonly [number, number];
  /** The draft's speeds on a device. */
  draftSpeed(spec: NodeSpec): { prefillTps: number; decodeTps: number };
}
const DRAFT_MODEL = 'llama-3.2-1b-instruct-q4';
const SMALL_DRAFT: SpeculativeWorld = { draftModel: DRAFT_MODEL, acceptance: 0.7, trueAcceptance: [0.5, 0.85], draftSpeed: (spec) => spec.draft! };
const SAME_DRAFT: SpeculativeWorld = { draftModel: MODEL, acceptance: 0.9, trueAcceptance: [0.85, 0.98], draftSpeed: (spec) => ({ prefillTps: spec.prefillTps, decodeTps: spec.decodeTps }) };
/** Podcast scripts are sampled (creative text; assumption): those sessions can never run speculatively. */
const sampled = (s: SessionSpec) => s.workload === 'podcast';

const ALL_SPECS = [PHONE, LAPTOP, DESKTOP, CLOUD] as const;
const specOf = (id: string): NodeSpec => ALL_SPECS.find((s) => s.id === id)!;

// ------------------------------------------------------------------------------------------------ randomness

const SEED = 8;
const RANDOM = worldRandom(SEED);
const { draw, uniform, logNormal } = RANDOM;

// ------------------------------------------------------------------------------------------------ the world's trace

const HORIZON_MS = 6 * 3600_000;

/** The nodes' true speeds over time (noise, warm-up, busy episodes, throttling): what the policy does not know. */
const TRUTH = new TrueSpeeds(RANDOM, Object.fromEntries(ALL_SPECS.map((spec) => [spec.id, spec.behaviour])), HORIZON_MS);

interface Episode {
  readonly start: number;
  readonly end: number;
  readonly factor: number;
}

/** When the desktop is switched on: alternating on/off stretches, an hour each on average (assumption). */
const DESKTOP_ON: readonly Episode[] = (() => {
  const out: Episode[] = [];
  let t = 0;
  for (let i = 0; t < HORIZON_MS; i++) {
    const off = -Math.log(Math.max(draw('desktop-off', i), 1e-9)) * 3600_000;
    const on = -Math.log(Math.max(draw('desktop-on', i), 1e-9)) * 3600_000;
    out.push({ start: t + off, end: t + off + on, factor: 1 });
    t += off + on;
  }
  return out;
})();

const BASE_WORLD: World = { nodes: [PHONE, LAPTOP, CLOUD], up: () => true };
const SPECULATIVE_WORLD: World = { ...BASE_WORLD, speculative: SMALL_DRAFT };
const SAME_MODEL_SPECULATIVE_WORLD: World = { ...BASE_WORLD, speculative: SAME_DRAFT };
const OWN_GPU_WORLD: World = { nodes: [PHONE, LAPTOP, DESKTOP, CLOUD], up: (node, t) => node !== 'desktop' || DESKTOP_ON.some((e) => e.start <= t && t < e.end) };

/** The true queue wait for a step on a node: cloud waits are log-normal, median 200 ms, p99 ≈ 2 s (assumption). */
function queueWait(node: string, key: (number | string)[]): number {
  return node === 'cloud' ? logNormal(200, 1, 'queue', ...key) : 0;
}

/** Network RTT varies ±30% around the profile (assumption). */
function rttJitter(key: (number | string)[]): number {
  return uniform(0.7, 1.3, 'rtt', ...key);
}

// ------------------------------------------------------------------------------------------------ workloads

type Workload = 'dev' | 'podcast' | 'survey';

interface StepSpec {
  /** Tokens this step adds to the context before generating (user turn, tool output, source). */
  readonly added: number;
  /** Tokens the step really generates. */
  readonly output: number;
  /** Tokens dropped from the context first (the survey agent keeps notes, not the sources it has read). */
  readonly dropped: number;
  /** Idle time before the step (the user thinking, tools running). */
  readonly thinkMs: number;
}

interface SessionSpec {
  readonly index: number;
  readonly workload: Workload;
  readonly privacy: Privacy;
  /** The device in the user's hand. */
  readonly here: 'phone' | 'laptop';
  readonly startMs: number;
  readonly baseTokens: number;
  readonly steps: readonly StepSpec[];
  readonly battery: { readonly level: number; readonly charging: boolean };
  /** The most tokens the agent lets a reply take (its reply-length setting). */
  readonly replyLimit: number;
}

/**
 * Workload shapes (assumptions; DESIGN.md §4 names the three agents):
 * - dev guidance: many short turns with tool calls — 3k-token system prompt + tool schemas, 25 turns each adding
 *   200–1,500 tokens (user text, file reads, grep output) and generating a log-normal 150 tokens (tool calls, short
 *   answers; a long explanation now and then); 5–40 s between turns.
 * - podcast: 10 segments, each adding 800–2,000 tokens of notes and generating a 600–1,400-token script.
 * - survey drafting (heavy): 12 sources of 3,000–7,000 tokens, each read in turn into a context that keeps the running
 *   notes (200–500 tokens per source) but drops the previous source, then two drafting steps of 2,000–3,500 tokens.
 */
/** Reply limits the agents set, above their longest replies (assumption): dev answers, podcast segments, survey drafts. */
const REPLY_LIMIT: Record<Workload, number> = { dev: 1536, podcast: 2048, survey: 4096 };

function makeSession(index: number, workload: Workload, privacy: Privacy): SessionSpec {
  const k = (...p: (number | string)[]) => [index, ...p];
  const steps: StepSpec[] = [];
  let baseTokens: number;
  if (workload === 'dev') {
    baseTokens = 3000;
    for (let i = 0; i < 25; i++) {
      steps.push({ added: Math.round(uniform(200, 1500, ...k('add', i))), output: Math.round(Math.min(1500, Math.max(20, logNormal(150, 0.8, ...k('out', i))))), dropped: 0, thinkMs: uniform(5_000, 40_000, ...k('think', i)) });
    }
  } else if (workload === 'podcast') {
    baseTokens = 1500;
    for (let i = 0; i < 10; i++) {
      steps.push({ added: Math.round(uniform(800, 2000, ...k('add', i))), output: Math.round(uniform(600, 1400, ...k('out', i))), dropped: 0, thinkMs: uniform(10_000, 60_000, ...k('think', i)) });
    }
  } else {
    baseTokens = 2000;
    let previousSource = 0;
    for (let i = 0; i < 12; i++) {
      const source = Math.round(uniform(3000, 7000, ...k('src', i)));
      steps.push({ added: source, output: Math.round(uniform(200, 500, ...k('out', i))), dropped: previousSource, thinkMs: uniform(1_000, 5_000, ...k('think', i)) });
      previousSource = source;
    }
    for (let i = 0; i < 2; i++) {
      steps.push({ added: 300, output: Math.round(uniform(2000, 3500, ...k('draft', i))), dropped: i === 0 ? previousSource : 0, thinkMs: uniform(5_000, 20_000, ...k('think', 'd', i)) });
    }
  }
  return {
    index,
    workload,
    privacy,
    here: index % 2 === 0 ? 'phone' : 'laptop',
    startMs: uniform(0, 3 * 3600_000, ...k('start')),
    baseTokens,
    steps,
    battery: { level: uniform(0.05, 1, ...k('battery')), charging: draw(...k('charging')) < 0.3 },
    replyLimit: REPLY_LIMIT[workload],
  };
}

function sessions(): SessionSpec[] {
  const out: SessionSpec[] = [];
  let i = 0;
  for (let n = 0; n < 16; n++) out.push(makeSession(i++, 'dev', 'any'));
  for (let n = 0; n < 10; n++) out.push(makeSession(i++, 'podcast', 'any'));
  for (let n = 0; n < 10; n++) out.push(makeSession(i++, 'survey', 'any'));
  // Private work: some sessions may not leave the device in hand, some may use the user's own devices only.
  for (let n = 0; n < 6; n++) out.push(makeSession(i++, 'dev', 'this-device'));
  for (let n = 0; n < 4; n++) out.push(makeSession(i++, 'podcast', 'my-devices'));
  for (let n = 0; n < 4; n++) out.push(makeSession(i++, 'survey', 'my-devices'));
  return out;
}

/**
 * The profiles the policy sees for a session: measured nominal speeds of the nodes attached now; which device is
 * "this" depends on the user.
 */
function profilesFor(world: World, s: SessionSpec, now: number, evenDetached = false): NodeProfile[] {
  return world.nodes.filter((spec) => evenDetached || world.up(spec.id, now)).map((spec) => {
    const kind: NodeKind = spec.id === 'cloud' ? 'cloud' : spec.id === s.here ? 'this-device' : 'my-device';
    const draft = world.speculative && kind === 'this-device' ? world.speculative : undefined;
    return {
      id: spec.id,
      name: spec.id === 'cloud' ? 'cloud-h100' : spec.id,
      kind,
      trust: spec.id === 'cloud' ? 'third-party' : 'own',
      models: { [MODEL]: { prefillTps: spec.prefillTps, decodeTps: spec.decodeTps, measuredAt: now }, ...(draft ? { [draft.draftModel]: { ...draft.draftSpeed(spec), measuredAt: now } } : {}) },
      ...(world.speculative && spec.id === 'cloud' ? { verifies: true } : {}),
      memoryBytes: spec.memoryBytes,
      ...(spec.id === 'phone' ? { battery: s.battery } : {}),
      link: { rttMs: spec.rttMs, bandwidthBps: spec.bandwidthBps },
      price: { promptPer1k: spec.pricePer1k, outputPer1k: spec.pricePer1k },
      queueWaitMs: spec.queueWaitMs,
      kvState: ENGINES[spec.engine].kvState,
    } satisfies NodeProfile;
  });
}

// ------------------------------------------------------------------------------------------------ running a step

interface SessionState {
  t: number;
  /** Context length in tokens before the step's additions. */
  context: number;
  /** Per node: leading tokens of the current context it holds in its KV cache. */
  cached: Record<string, number>;
  /** Bytes of session objects (checkpoints, transcript, component state) in total and as synced to each node. */
  bytes: number;
  synced: Record<string, number>;
  current: string | undefined;
  /** The last step ran speculatively (here, verified by the cloud worker). */
  speculative?: boolean;
  /** Per node: when it last ran a step of this session (its engine is cold after COLD_AFTER_MS). */
  lastRan: Record<string, number>;
  /** The device in the user's hand. */
  readonly here: string;
}

/** Bytes of session objects per context token (transcript text + event log) on top of a 2 MiB component image (assumption). */
const BYTES_PER_TOKEN = 6;
const COMPONENT_BYTES = 2 * 2 ** 20;
const DECODE_CHUNK = 16;
const COMPACT_AT = 16_000;
const COMPACT_TO = 6_000;

interface StepOutcome {
  readonly ms: number;
  readonly cost: number;
  readonly moves: number;
  readonly nodes: string[];
  /** The node running the step left before it ended (`st.t` is when): the step has to start again. */
  readonly left?: boolean;
}

type Strategy = { readonly kind: 'fixed'; readonly node: (s: SessionSpec) => string } | { readonly kind: 'policy'; readonly prefs: PlacementPrefs } | { readonly kind: 'oracle'; readonly prefs: PlacementPrefs };

function pendingStep(world: World, s: SessionSpec, st: SessionState, prompt: number, expectedOutput: number): PendingStep {
  const missing: Record<string, number> = {};
  for (const spec of world.nodes) missing[spec.id] = Math.max(0, st.bytes - (st.synced[spec.id] ?? 0));
  return {
    sessionId: `s${s.index}`,
    model: MODEL,
    promptTokens: prompt,
    expectedOutputTokens: expectedOutput,
    cachedTokens: { ...st.cached },
    missingBytes: missing,
    kvBytesPerToken: KV_BYTES_PER_TOKEN,
    memoryBytes: WEIGHT_BYTES + (prompt + expectedOutput) * KV_BYTES_PER_TOKEN,
    ...(world.speculative ? { sampled: sampled(s), speculative: { draftModel: world.speculative.draftModel, acceptance: world.speculative.acceptance } } : {}),
  };
}

/** decide() as the session runs now: speculatively (verified by the cloud worker), or on `st.current`. */
function decideNow(world: World, s: SessionSpec, st: SessionState, prompt: number, expected: number, nodes: NodeProfile[], prefs: PlacementPrefs) {
  return st.speculative ? decide(pendingStep(world, s, st, prompt, expected), nodes, prefs, 'cloud', 'speculative') : decide(pendingStep(world, s, st, prompt, expected), nodes, prefs, st.current);
}

/**
 * Runs one step speculatively from `st.t` in the true world: the device in hand drafts `k` tokens a round with the
 * world's draft model (its own noise, warm-up and slowdowns), the cloud worker verifies each round in one pass (its
 * own), over a jittered round trip; each round's accepted count is drawn at the step's true acceptance. The session
 * stays on the device; the verifier bills the prompt, every drafted id and the output. No live moves. Mutates `st`.
 */
function runSpeculativeStep(world: World, s: SessionSpec, st: SessionState, stepIndex: number, prompt: number, output: number, k: number, attempt = 0): StepOutcome {
  const spec = world.speculative!;
  const key = attempt === 0 ? [s.index, stepIndex, 'spec'] : [s.index, stepIndex, 'spec', 'again', attempt];
  const here = specOf(st.here);
  const draft = spec.draftSpeed(here);
  const cloud = specOf('cloud');
  const t0 = st.t;
  const hereTruth = TRUTH.step(st.here, t0, key, st.lastRan[st.here]);
  const cloudTruth = TRUTH.step('cloud', t0, key, st.lastRan.cloud);
  const acceptance = uniform(spec.trueAcceptance[0], spec.trueAcceptance[1], 'acceptance', ...key);
  const draftCache = spec.draftModel === MODEL ? st.here : `draft:${st.here}`;
  // The draft engine reads what it lacks of the prompt, then the verifier reads it all (it keeps no slot between steps).
  let t = t0 + hereTruth.coldLoadMs + ((prompt - Math.min(st.cached[draftCache] ?? 0, prompt)) / (draft.prefillTps * hereTruth.factor * TRUTH.slowdown(st.here, t0, 0))) * 1000;
  t += queueWait('cloud', key) + cloud.rttMs * rttJitter([...key, 'open']) + (prompt / (cloud.prefillTps * cloudTruth.factor * TRUTH.slowdown('cloud', t, 0))) * 1000;
  const busyFrom = t;
  let decided = 0;
  let drafted = 0;
  for (let round = 0; decided < output; round++) {
    const n = Math.min(k, output - decided - 1);
    const hf = hereTruth.factor * TRUTH.slowdown(st.here, t, t - busyFrom);
    t += (n / (draft.decodeTps * hf)) * 1000;
    const cf = cloudTruth.factor * TRUTH.slowdown('cloud', t, 0);
    t += cloud.rttMs * rttJitter([...key, round]) + 1000 / (cloud.decodeTps * cf) + (n / (cloud.prefillTps * cf)) * 1000;
    let accepted = 0;
    while (accepted < n && draw('accept', ...key, round, accepted) < acceptance) accepted++;
    drafted += n;
    decided += accepted + 1;
  }
  const cost = ((prompt + drafted + output) / 1000) * cloud.pricePer1k;
  st.t = t;
  st.cached[draftCache] = prompt + output;
  st.lastRan[st.here] = t;
  st.lastRan.cloud = t;
  st.current = st.here;
  st.speculative = true;
  // The verifier sees the ids: it counts where the step ran (privacy).
  return { ms: t - t0, cost, moves: 0, nodes: [st.here, 'cloud'] };
}

/**
 * Time to get `prompt` tokens into `node`'s cache and start generating, in the true world: object transfer, RTT,
 * queue, then re-prefill of what it lacks or shipping another node's KV cache (whichever `resume` the policy chose).
 */
function startupMs(world: World, node: string, prompt: number, st: SessionState, resume: Resume | undefined, t: number, key: (number | string)[]): number {
  const spec = specOf(node);
  const from = st.current && st.current !== node ? specOf(st.current) : undefined;
  const missing = Math.max(0, st.bytes - (st.synced[node] ?? 0));
  const transfer = missing > 0 ? (missing / Math.min(spec.bandwidthBps, from?.bandwidthBps ?? Infinity)) * 1000 : 0;
  const remote = node !== st.here;
  const rtt = remote ? spec.rttMs * rttJitter([...key, node]) : 0;
  const queue = queueWait(node, [...key, node]);
  // The world's own speed for this step: noise, slowdowns, and a cold engine's load and slow first step.
  const truth = TRUTH.step(node, t, key, st.lastRan[node]);
  const f = truth.factor * TRUTH.slowdown(node, t, 0);
  const cachedHere = Math.min(st.cached[node] ?? 0, prompt);
  let resumeMs = ((prompt - cachedHere) / (spec.prefillTps * f)) * 1000;
  if (resume === 'kv-ship') {
    let best = Infinity;
    for (const src of world.nodes) {
      const held = Math.min(st.cached[src.id] ?? 0, prompt);
      // Only between engines that really save and load KV state (node-llama-cpp; the browser engines cannot).
      if (src.id === node || held <= cachedHere || !world.up(src.id, t) || !ENGINES[src.engine].kvState || !ENGINES[spec.engine].kvState) continue;
      const ship = ((held * KV_BYTES_PER_TOKEN) / Math.min(src.bandwidthBps, spec.bandwidthBps)) * 1000 + (src.id === st.here ? 0 : src.rttMs);
      best = Math.min(best, ship + ((prompt - held) / (spec.prefillTps * f)) * 1000);
    }
    resumeMs = Math.min(resumeMs, best);
  }
  return transfer + rtt + queue + truth.coldLoadMs + resumeMs;
}

/** Runs one step from `st.t` on `node` (and, for the policy, wherever live moves take it). Mutates `st`. */
function runStep(world: World, s: SessionSpec, st: SessionState, stepIndex: number, prompt: number, output: number, node: string, resume: Resume | undefined, strategy: Strategy, expectedOutput: number, attempt = 0): StepOutcome {
  // A step started again after its node left draws its own queue wait and RTT.
  const key = attempt === 0 ? [s.index, stepIndex] : [s.index, stepIndex, 'again', attempt];
  const t0 = st.t;
  let t = t0 + startupMs(world, node, prompt, st, resume, t0, key);
  let cost = (prompt / 1000) * specOf(node).pricePer1k;
  let moves = 0;
  const nodes = [node];
  st.speculative = false;
  const enter = (n: string, ctx: number) => {
    st.synced[n] = st.bytes;
    st.cached[n] = ctx;
    st.current = n;
  };
  // Noise and warm-up hold for the whole step on a node, as it was when the step reached it.
  let truth = TRUTH.step(node, t0, key, st.lastRan[node]);
  enter(node, prompt);
  let generated = 0;
  let busyFrom = t;
  let windowStart = t;
  let windowTokens = 0;
  let hop = 0;
  while (generated < output) {
    if (!world.up(node, t)) {
      // The node is gone, with what it had of this step: the session is at its last checkpoint, before the step.
      st.t = t;
      st.cached[node] = 0;
      delete st.lastRan[node];
      st.current = st.here;
      return { ms: t - t0, cost, moves, nodes, left: true };
    }
    const spec = specOf(node);
    const n = Math.min(DECODE_CHUNK, output - generated);
    const f = truth.factor * TRUTH.slowdown(node, t, t - busyFrom);
    t += (n / (spec.decodeTps * f)) * 1000;
    generated += n;
    windowTokens += n;
    cost += (n / 1000) * spec.pricePer1k;
    // Live check (the product's mid-generation rule): every 64 tokens, compare the measured rate with the estimate.
    if (strategy.kind === 'policy' && windowTokens >= 64 && generated < output) {
      const measured = windowTokens / ((t - windowStart) / 1000);
      const remainingExpected = remainingReplyTokens(expectedOutput, generated, s.replyLimit);
      const check = shouldMigrate(measured, spec.decodeTps, remainingExpected, { observedTokens: windowTokens });
      windowStart = t;
      windowTokens = 0;
      if (check.redecide) {
        st.t = t;
        st.cached[node] = prompt + generated;
        const nodesNow = profilesFor(world, s, t);
        const base = pendingStep(world, s, st, prompt, generated + remainingExpected);
        const d = redecideMidGeneration(base, nodesNow, strategy.prefs, node, { measuredDecodeTps: measured, generatedTokens: generated, now: t });
        // Live, the simulated session moves between nodes only; a speculative run starts at a step boundary.
        if (d.move && !d.estimate.mode) {
          const ctx = prompt + generated;
          const liveKey = [...key, 'live', hop++];
          st.lastRan[node] = t;
          truth = TRUTH.step(d.nodeId, t, liveKey, st.lastRan[d.nodeId]);
          t += 500 + startupMs(world, d.nodeId, ctx, st, d.estimate.resume, t, liveKey);
          cost += (ctx / 1000) * specOf(d.nodeId).pricePer1k;
          node = d.nodeId;
          enter(node, ctx);
          nodes.push(node);
          busyFrom = t;
          windowStart = t;
          moves++;
        }
      }
    }
  }
  st.t = t;
  st.cached[node] = prompt + output;
  st.lastRan[node] = t;
  return { ms: t - t0, cost, moves, nodes };
}

interface SessionResult {
  readonly latencies: number[];
  readonly cost: number;
  readonly moves: number;
  readonly violations: number;
  /** Steps run speculatively, and how many of those were of a sampled session (must be none). */
  readonly speculativeSteps: number;
  readonly sampledSpeculativeSteps: number;
}

/** What `simulate` shows an observer before each placement: the session's state and the step about to be placed. */
type StepObserver = (st: SessionState, step: { readonly index: number; readonly prompt: number; readonly output: number; readonly expected: number; readonly nodes: NodeProfile[]; readonly attempt: number }) => void;

function simulate(world: World, s: SessionSpec, strategy: Strategy, observe?: StepObserver): SessionResult {
  const st: SessionState = { t: s.startMs, context: s.baseTokens, cached: {}, bytes: COMPONENT_BYTES + s.baseTokens * BYTES_PER_TOKEN, synced: { [s.here]: Infinity }, current: s.here, lastRan: {}, here: s.here };
  const latencies: number[] = [];
  let cost = 0;
  let moves = 0;
  let violations = 0;
  let speculativeSteps = 0;
  let sampledSpeculativeSteps = 0;
  const replies: number[] = [];
  const everyNode = profilesFor(world, s, 0, true);
  s.steps.forEach((step, i) => {
    st.t += step.thinkMs;
    // The agent drops what it no longer needs: the survey its last source; any agent compacts a long history into a
    // summary (at 16k tokens, down to 6k; assumption). Either invalidates every cache past the cut.
    const dropped = step.dropped > 0 ? step.dropped : st.context + step.added > COMPACT_AT ? st.context - COMPACT_TO : 0;
    if (dropped > 0) {
      st.context -= dropped;
      // What each engine keeps of it is its own: wllama and node-llama-cpp the common prefix, web-llm nothing.
      for (const id of Object.keys(st.cached)) st.cached[id] = keptAfterDivergence(specOf(id).engine, st.cached[id]!, s.baseTokens);
    }
    const prompt = st.context + step.added;
    st.bytes += step.added * BYTES_PER_TOKEN;
    // The policy expects a reply as long as the session's recent ones, as the product does; only the oracle knows it.
    const expected = expectedReplyTokens(replies, s.replyLimit);
    let ms = 0;
    // A step whose node leaves before it ends starts again, placed anew: its time counts from the first start.
    for (let attempt = 0; ; attempt++) {
      const nodesNow = profilesFor(world, s, st.t);
      observe?.(st, { index: i, prompt, output: step.output, expected, nodes: nodesNow, attempt });
      let node: string;
      let resume: Resume | undefined;
      /** Drafted tokens a round when the step runs speculatively. */
      let draftTokens: number | undefined;
      if (strategy.kind === 'fixed') {
        node = strategy.node(s);
        resume = 'kv-ship'; // startupMs takes the better of shipping and re-prefilling, with true speeds: no handicap
      } else if (strategy.kind === 'policy') {
        const d = decideNow(world, s, st, prompt, expected, nodesNow, strategy.prefs);
        node = d.nodeId;
        resume = d.estimate.resume;
        draftTokens = d.estimate.speculative?.draftTokens;
        if (d.move) moves++;
      } else {
        ({ node, resume, draftTokens } = oracleChoice(world, s, st, i, prompt, step.output, strategy.prefs, nodesNow, attempt));
      }
      const before = st.speculative ? 'speculative' : st.current;
      const out = draftTokens === undefined ? runStep(world, s, st, i, prompt, step.output, node, resume, strategy, expected, attempt) : runSpeculativeStep(world, s, st, i, prompt, step.output, draftTokens, attempt);
      if (draftTokens !== undefined) {
        speculativeSteps++;
        if (sampled(s)) sampledSpeculativeSteps++;
      }
      if (strategy.kind !== 'policy' && before !== undefined && before !== (draftTokens === undefined ? node : 'speculative')) moves++;
      moves += out.moves;
      for (const n of out.nodes) if (!privacyAllows(s.privacy, everyNode.find((p) => p.id === n)!)) violations++;
      ms += out.ms;
      cost += out.cost;
      if (!out.left) break;
    }
    latencies.push(ms);
    st.context = prompt + step.output;
    st.bytes += step.output * BYTES_PER_TOKEN;
    replies.push(step.output);
  });
  return { latencies, cost, moves, violations, speculativeSteps, sampledSpeculativeSteps };
}

/**
 * The oracle: for this step, runs it on every node the constraints allow (same privacy, budget and battery rules as
 * the policy, via decide's own candidate list) in the true world and keeps the best by the same objective. It knows
 * the future, so it never picks a node that leaves before the step ends.
 */
function oracleChoice(world: World, s: SessionSpec, st: SessionState, i: number, prompt: number, output: number, prefs: PlacementPrefs, nodes: NodeProfile[], attempt: number): { node: string; resume: Resume; draftTokens?: number } {
  const d = decideNow(world, s, st, prompt, output, nodes, { ...prefs, hysteresis: 0, moveCostMs: 0 });
  const usable = d.candidates.filter((c) => c.allowed);
  const pool = usable.some((c) => !c.avoided) ? usable.filter((c) => !c.avoided) : usable;
  let best: { node: string; resume: Resume; draftTokens?: number; score: number } | undefined;
  for (const c of pool) {
    const trial = cloneState(st);
    // A speculative run is tried with the draft length the policy's plan gives (the run adapts it; the oracle does not).
    const draftTokens = c.speculative?.draftTokens;
    const r = draftTokens === undefined ? runStep(world, s, trial, i, prompt, output, c.nodeId, c.resume, { kind: 'fixed', node: () => c.nodeId }, output, attempt) : runSpeculativeStep(world, s, trial, i, prompt, output, draftTokens, attempt);
    // The product's own score; cheapest breaks ties by time (free nodes differ in speed).
    const score = r.left ? Infinity : objectiveScore(r.ms, r.cost, prefs) + (prefs.objective === 'cheapest' ? r.ms * 1e-12 : 0);
    if (!best || score < best.score) best = { node: c.nodeId, resume: c.resume, ...(draftTokens === undefined ? {} : { draftTokens }), score };
  }
  return { node: best!.node, resume: best!.resume, ...(best!.draftTokens === undefined ? {} : { draftTokens: best!.draftTokens }) };
}

function cloneState(st: SessionState): SessionState {
  return { ...st, cached: { ...st.cached }, synced: { ...st.synced }, lastRan: { ...st.lastRan } };
}

/**
 * The oracle's check (test/unit/placement/sim-world.test.ts): session `index` run under the policy with the product's
 * defaults but `objective`, in the fleet or with the own GPU desktop; before each step, the policy's choice and the oracle's are each run from that very state in the true
 * world (without live moves) and scored by the objective. The oracle can never score worse.
 */
export function policyAndOracleSteps(index: number, objective: Objective = DEFAULTS.objective, ownGpu = false): { policy: number; oracle: number }[] {
  const world = ownGpu ? OWN_GPU_WORLD : BASE_WORLD;
  const s = sessions()[index]!;
  const prefs: PlacementPrefs = { ...DEFAULTS, objective, privacy: s.privacy };
  const out: { policy: number; oracle: number }[] = [];
  simulate(world, s, { kind: 'policy', prefs }, (st, step) => {
    const score = (node: string, resume: Resume) => {
      const r = runStep(world, s, cloneState(st), step.index, step.prompt, step.output, node, resume, { kind: 'fixed', node: () => node }, step.output, step.attempt);
      return r.left ? Infinity : objectiveScore(r.ms, r.cost, prefs);
    };
    const d = decideNow(world, s, st, step.prompt, step.expected, step.nodes, prefs);
    const o = oracleChoice(world, s, st, step.index, step.prompt, step.output, prefs, step.nodes, step.attempt);
    out.push({ policy: score(d.nodeId, d.estimate.resume), oracle: score(o.node, o.resume) });
  });
  return out;
}

/** How many sessions the simulator runs (for the oracle's check). */
export const SESSION_COUNT = sessions().length;

function p95(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}

// ------------------------------------------------------------------------------------------------ context parallelism

interface SimNode extends ParallelNode {
  readonly spec: NodeSpec;
  /** Speed factor from `from` ms of the job on (a node throttled mid-job). */
  readonly throttle?: { readonly from: number; readonly factor: number };
}

/** Each sub-context: read the source (prefill) and write its part of the survey (400 tokens, assumption). */
const PART_OUTPUT = 400;

function partMs(node: SimNode, tokens: number, slow: number): number {
  const s = node.spec;
  const remote = s.id === 'cloud';
  return (remote ? s.rttMs + s.queueWaitMs : 0) + ((tokens / s.prefillTps + PART_OUTPUT / s.decodeTps) * 1000) / slow;
}

/** What a node's profile says a part of average size takes, as tokens/s: the scheduler's starting speed. */
function measuredSpeed(spec: NodeSpec, avgTokens: number): number {
  return avgTokens / (partMs({ id: spec.id, speed: 1, spec }, avgTokens, 1) / 1000);
}

async function surveyJobMs(nodes: readonly SimNode[], tasks: readonly ParallelTask<number>[]): Promise<number> {
  const clock = new VirtualClock();
  await clock.run(runParallel({
    tasks,
    nodes,
    now: clock.now,
    runOn: async (node, task, signal) => {
      const slow = node.throttle && clock.now() >= node.throttle.from ? node.throttle.factor : 1;
      await clock.sleep(partMs(node, task.tokens, slow), signal);
      return task.input;
    },
  }));
  return clock.now();
}

async function parallelFigures(): Promise<Figures> {
  const tasks: ParallelTask<number>[] = Array.from({ length: 12 }, (_, i) => ({ id: `source-${i}`, tokens: Math.round(uniform(3000, 7000, 'parallel', i)), input: i }));
  const avg = tasks.reduce((a, t) => a + t.tokens, 0) / tasks.length;
  const node = (spec: NodeSpec, id = spec.id, throttle?: SimNode['throttle']): SimNode => ({ id, speed: measuredSpeed(spec, avg), spec, ...(throttle ? { throttle } : {}) });
  // Three laptop-class nodes (the user's laptop and two more own devices), one of which gets throttled to half speed a
  // minute into the job — as in the real bench (two Chromium nodes, one throttled, + a worker). Baseline: one of them.
  const one = await surveyJobMs([node(LAPTOP, 'laptop-1')], tasks);
  const three = await surveyJobMs([node(LAPTOP, 'laptop-1'), node(LAPTOP, 'laptop-2'), node(LAPTOP, 'laptop-3', { from: 60_000, factor: 0.5 })], tasks);
  // The heterogeneous fleet: the cloud GPU alone vs cloud + laptop + phone.
  const cloudOnly = await surveyJobMs([node(CLOUD)], tasks);
  const fleet = await surveyJobMs([node(CLOUD), node(LAPTOP), node(PHONE)], tasks);
  return {
    parallel_speedup_3: { value: one / three, unit: 'x' },
    parallel_job_ms_3: compared(three, 'ms', 'one_node_ms', one),
    parallel_speedup_fleet: { value: cloudOnly / fleet, unit: 'x' },
    parallel_job_ms_fleet: compared(fleet, 'ms', 'cloud_alone_ms', cloudOnly),
  };
}

// ------------------------------------------------------------------------------------------------ the suite

const DEFAULTS: PlacementPrefs = { objective: 'balanced', privacy: 'any' };

/** The cost goal (issue 8), for cost_goal_usd_h: the price of time at which the policy reaches it. Not a baseline. */
const COST_GOAL = 1.39;

interface Variant {
  readonly suffix: string;
  readonly objective: Objective;
  readonly usdPerHour?: number;
  /** Default: the fleet (phone, laptop, cloud). */
  readonly world?: World;
}

/**
 * The product default first (names without suffix), then the other objectives on the same world, then the default
 * again with the user's own GPU desktop in the fleet part of the time (the always-local and always-cloud baselines
 * do not change: they never use it).
 */
const VARIANTS: readonly Variant[] = [
  { suffix: '', objective: 'balanced' },
  { suffix: '_fastest', objective: 'fastest' },
  { suffix: '_cheapest', objective: 'cheapest' },
  { suffix: '_balanced_1usd_h', objective: 'balanced', usdPerHour: 1 },
  { suffix: '_own_gpu', objective: 'balanced', world: OWN_GPU_WORLD },
  { suffix: '_speculative', objective: 'balanced', world: SPECULATIVE_WORLD },
  { suffix: '_speculative_fastest', objective: 'fastest', world: SPECULATIVE_WORLD },
  { suffix: '_speculative_same_model', objective: 'balanced', world: SAME_MODEL_SPECULATIVE_WORLD },
];

export const placementSuite: Suite = {
  name: 'placement',
  description: 'trace-driven fleet simulator (phone, laptop, cloud GPU; and with an own GPU desktop): the placement policy vs fixed placement and an oracle; context-parallel survey',
  async run(): Promise<Figures> {
    const all = sessions();
    const run = (strategy: (s: SessionSpec) => Strategy, which: readonly SessionSpec[] = all, world = BASE_WORLD) => summarize(which.map((s) => ({ s, r: simulate(world, s, strategy(s)) })));
    const local = run(() => ({ kind: 'fixed', node: (x) => x.here }));
    // Always-cloud only for the sessions that may go to the cloud at all.
    const cloud = run(() => ({ kind: 'fixed', node: () => 'cloud' }), all.filter((s) => s.privacy === 'any'));

    const figures: Figures = {};
    for (const variant of VARIANTS) {
      const prefsOf = (s: SessionSpec): PlacementPrefs => ({ ...DEFAULTS, objective: variant.objective, privacy: s.privacy, ...(variant.usdPerHour ? { usdPerHour: variant.usdPerHour } : {}) });
      const p = run((s) => ({ kind: 'policy', prefs: prefsOf(s) }), all, variant.world);
      const o = run((s) => ({ kind: 'oracle', prefs: prefsOf(s) }), all, variant.world);
      const x = variant.suffix;
      // Ratios of figures measured in this run, on the same simulated world; their parts follow as raw figures, each
      // with its baseline.
      figures[`cost_vs_cloud${x}`] = { value: cloud.costPublic / p.costPublic, unit: 'x' };
      figures[`p95_vs_oracle${x}`] = { value: p.p95All / o.p95All, unit: 'x' };
      figures[`p95_vs_local${x}`] = { value: local.p95HeavyPublic / p.p95HeavyPublic, unit: 'x' };
      figures[`privacy_violations${x}`] = { value: p.violations, unit: 'steps' };
      figures[`moves_per_session${x}`] = { value: p.moves / p.sessions, unit: 'moves' };
      if (variant.world?.speculative) {
        // How often the policy runs a step speculatively, and the oracle; never for a sampled session.
        figures[`speculative_share${x}`] = { value: p.speculativeSteps / p.steps, unit: 'share' };
        figures[`oracle_speculative_share${x}`] = { value: o.speculativeSteps / o.steps, unit: 'share' };
        figures[`sampled_speculative_steps${x}`] = { value: p.sampledSpeculativeSteps, unit: 'steps' };
      }
      if (x === '') {
        figures.p95_vs_local_incl_private = { value: local.p95Heavy / p.p95Heavy, unit: 'x' };
        // Where the choice is between own devices only (phone vs a sometimes-busy laptop), the oracle's edge shows.
        figures.p95_vs_oracle_my_devices = { value: p.p95MyDevices / o.p95MyDevices, unit: 'x' };
        figures.policy_p95_my_devices_ms = compared(p.p95MyDevices, 'ms', 'oracle_p95_my_devices_ms', o.p95MyDevices);
        figures.oracle_cost_vs_cloud = { value: cloud.costPublic / o.costPublic, unit: 'x' };
        // Always-device over every session (private ones included: they run on the device under every strategy).
        figures.p95_vs_device = { value: local.p95All / p.p95All, unit: 'x' };
        figures.always_device_p95_ms = compared(local.p95All, 'ms', 'policy_p95_ms', p.p95All);
      }
      figures[`policy_cost_usd${x}`] = compared(p.costPublic, 'USD', 'always_cloud_cost_usd', cloud.costPublic);
      figures[`policy_p95_heavy_ms${x}`] = compared(p.p95HeavyPublic, 'ms', 'always_device_p95_heavy_ms', local.p95HeavyPublic);
      figures[`policy_p95_ms${x}`] = compared(p.p95All, 'ms', 'oracle_p95_ms', o.p95All);
    }
    figures.always_cloud_p95_heavy_ms = { value: cloud.p95HeavyPublic, unit: 'ms' };
    Object.assign(figures, costGoalFigures(run, local, cloud));
    Object.assign(figures, await parallelFigures());
    return figures;
  },
};

type Summary = ReturnType<typeof summarize>;

/**
 * What the cost goal asks of the user: `balanced` has one knob, the price of the user's time. Going down a log grid
 * from the default $10/h (2% apart, to $0.05/h), the first price at which cost_vs_cloud meets its goal, and
 * p95_vs_local there — for the policy and for the oracle, so the figures show how much of the answer is the world's
 * (speeds and prices) and how much the policy's.
 */
function costGoalFigures(run: (strategy: (s: SessionSpec) => Strategy) => Summary, local: Summary, cloud: Summary): Figures {
  const firstMeeting = (kind: 'policy' | 'oracle') => {
    for (let usdPerHour = DEFAULT_PREFS.usdPerHour; usdPerHour >= 0.05; usdPerHour /= 1.02) {
      const r = run((s) => ({ kind, prefs: { ...DEFAULTS, privacy: s.privacy, usdPerHour } }));
      if (cloud.costPublic / r.costPublic >= COST_GOAL) return { usdPerHour, p95VsLocal: local.p95HeavyPublic / r.p95HeavyPublic };
    }
    return { usdPerHour: Number.NaN, p95VsLocal: Number.NaN };
  };
  const figures: Figures = {};
  for (const [kind, x] of [['policy', ''], ['oracle', '_oracle']] as const) {
    const at = firstMeeting(kind);
    figures[`cost_goal_usd_h${x}`] = compared(at.usdPerHour, 'USD/h', 'default_usd_h', DEFAULT_PREFS.usdPerHour);
    figures[`p95_vs_local_at_cost_goal${x}`] = { value: at.p95VsLocal, unit: 'x' };
  }
  return figures;
}

function summarize(parts: { s: SessionSpec; r: SessionResult }[]) {
  const pub = parts.filter((p) => p.s.privacy === 'any');
  const survey = (ps: typeof parts) => ps.filter((p) => p.s.workload === 'survey').flatMap((p) => p.r.latencies);
  return {
    p95All: p95(parts.flatMap((p) => p.r.latencies)),
    /** The heavy workload's sessions that may use any node: where placement has a choice to make. */
    p95HeavyPublic: p95(survey(pub)),
    p95Heavy: p95(survey(parts)),
    p95MyDevices: p95(parts.filter((p) => p.s.privacy === 'my-devices').flatMap((p) => p.r.latencies)),
    costPublic: pub.reduce((a, p) => a + p.r.cost, 0),
    moves: parts.reduce((a, p) => a + p.r.moves, 0),
    violations: parts.reduce((a, p) => a + p.r.violations, 0),
    sessions: parts.length,
    steps: parts.reduce((a, p) => a + p.r.latencies.length, 0),
    speculativeSteps: parts.reduce((a, p) => a + p.r.speculativeSteps, 0),
    sampledSpeculativeSteps: parts.reduce((a, p) => a + p.r.sampledSpeculativeSteps, 0),
  };
}
