/**
 * Automatic placement of a live session on this device (DESIGN §7 "when"): at every step boundary, and during a
 * generation when the measured rate falls well short of the estimate (then migrate live).
 * - During a generation: the first tokens of each set this device's estimate (what it does now, not what it did at
 *   start-up; a speculative generation's tokens come at that mode's pace, so they set nothing and are not watched); then the fleet is probed — the relay's cloud workers and the devices of this device's space, with
 *   their measured speeds and the round trip to the relay — and a GenerationWatch compares every following token's
 *   rate with the estimate. When this device slows well below it (the user capped its CPU, the phone got hot) and
 *   another node wins by more than the hysteresis, `move` is called with that node and the reason; the mover cuts
 *   the generation and the target continues it.
 * - At a step boundary (`beforeStep`): the policy decides where the next step runs, with this device's speed as its
 *   last generation here measured it and the session's context already in its cache; the caller moves the idle
 *   session first when it says so.
 * A private session ("this device only") never moves, and nothing moves while the relay cannot be reached.
 */
import type { NodeProfile, PlacementPrefs } from '../core/placement/index.ts';
import { GenerationWatch, type Decision, type LinkProbe } from '../core/placement/index.ts';
import type { RunPlacement } from '../core/protocol/index.ts';
import type { RunnerEvent } from '../core/host/index.ts';
import { probeBattery, probeLink, relayFleet } from './placement-probe.ts';
import { decideNextStep, THIS_DEVICE, thisDeviceNode, withStepPrefix, type NextStep } from './next-step.ts';

export interface AutoPlacementContext {
  relay: string;
  prefs: PlacementPrefs;
  /** This device's space id, when it is in one (its devices are then candidates). */
  space?: string;
  /** This device's own node id, when it offers itself (not counted twice). */
  self?: string;
}

export interface AutoPlacerOptions {
  /** What the user allows now; undefined (or privacy "this-device") turns automatic moves off. */
  context(): Promise<AutoPlacementContext | undefined>;
  /** The session's next step (next-step.ts); without `decodeTps`, this device's rate is what this page timed. */
  step(): Promise<Omit<NextStep, 'decodeTps'> & { decodeTps?: number | null }>;
  move(where: RunPlacement | undefined, decision: Decision): void;
  /** A re-decision that kept the session here, for "where it runs" to show. */
  onDecision?(decision: Decision): void;
  /** The clock token times are read from (tests). Default performance.now. */
  now?(): number;
}

/** Where the next step should run, when it is not here. */
export interface StepPlacement {
  where: RunPlacement | undefined;
  decision: Decision;
}

/** Tokens of a generation that set this device's estimate before the watch starts. */
const BASELINE_TOKENS = 16;

export class AutoPlacer {
  #times: number[] = [];
  #watch: GenerationWatch | undefined;
  #preparing = false;
  /** Set once a move was asked for: nothing more until the next generation. */
  #done = false;
  /** The fleet and the user's choices the watch decides with. */
  #nodes: NodeProfile[] = [];
  #context: AutoPlacementContext | undefined;
  /** This generation's tokens here: how many, and when the first and the last came. */
  #span = { count: 0, first: 0, last: 0 };
  /** This device's decode rate as its last generation here measured it, tok/s (0: none measured yet). */
  #decodeTps = 0;
  /** The user chose to run the session here: no automatic move from now on. */
  #held = false;

  constructor(private readonly opts: AutoPlacerOptions) {}

  /**
   * One of the session's events on this device. `speculative`: it runs here speculatively, so its tokens come at the
   * pace of drafting and verifying, not of this device decoding alone: they are not timed as this device's speed.
   */
  event(event: RunnerEvent, speculative = false): void {
    if (event.type === 'step' || event.type === 'generation') return this.#reset();
    // Text of no token of its own (a tool call's opening tag) is not a decoded token.
    if (event.type !== 'token' || event.id === null || speculative) return;
    const now = this.#now();
    if (this.#span.count++ === 0) this.#span.first = now;
    this.#span.last = now;
    if (this.#done || this.#held) return;
    if (this.#watch) {
      const decision = this.#watch.token();
      if (decision) {
        this.#done = true;
        this.opts.move(this.#where(decision), decision);
      } else if (this.#watch.last) this.opts.onDecision?.(this.#watch.last);
      return;
    }
    this.#times.push(now);
    if (this.#times.length === BASELINE_TOKENS && !this.#preparing) void this.#prepare();
  }

  /**
   * At a step boundary, before the session's next step runs here: where the policy would run it. Undefined keeps
   * it here — it decided so, or nothing is known yet to decide with (no generation measured here, no relay).
   */
  async beforeStep(speculative = false): Promise<StepPlacement | undefined> {
    if (this.#held) return undefined;
    try {
      const context = await this.opts.context();
      if (!context || context.prefs.privacy === 'this-device') return undefined;
      const step = await this.opts.step();
      // This device's rate as its newest generation here recorded it ("Where it runs" shows the same), else as timed here.
      const decodeTps = step.decodeTps ?? this.#decodeTps;
      if (decodeTps <= 0) return undefined;
      const [link, battery] = await Promise.all([probeLink(context.relay), probeBattery()]);
      const [here, ...fleet] = await this.#fleet(context, step.model, decodeTps, link, battery);
      // Running speculatively now: verified by the relay's own engine (the node that verifies).
      const decision = decideNextStep(step, here!, fleet, context.prefs, speculative);
      if (!decision.move) {
        this.opts.onDecision?.(decision);
        return undefined;
      }
      this.#nodes = [here!, ...fleet];
      this.#context = context;
      return { where: this.#where(decision), decision };
    } catch {
      return undefined; // no relay, no fleet: the step runs here, as it would without automatic placement
    }
  }

  /** The user brought the session here by hand: it stays, whatever the policy would say, while this page has it open. */
  hold(): void {
    this.#held = true;
  }

  /** Whether a generation here is being watched now (its first tokens set the estimate, and the fleet is known). */
  get watching(): boolean {
    return this.#watch !== undefined;
  }

  /** Whether the user brought the session here by hand (then it never moves by itself while this page is open). */
  get held(): boolean {
    return this.#held;
  }

  #now(): number {
    return this.opts.now?.() ?? performance.now();
  }

  #reset(): void {
    const { count, first, last } = this.#span;
    if (count >= BASELINE_TOKENS && last > first) this.#decodeTps = (count - 1) / ((last - first) / 1000);
    this.#span = { count: 0, first: 0, last: 0 };
    this.#times = [];
    this.#watch = undefined;
    this.#preparing = false;
    this.#done = false;
  }

  /** Probes the fleet and starts the watch, with this device's rate over the first tokens as its estimate. */
  async #prepare(): Promise<void> {
    this.#preparing = true;
    const times = this.#times;
    try {
      const context = await this.opts.context();
      if (!context || context.prefs.privacy === 'this-device') return;
      const [step, link, battery] = await Promise.all([this.opts.step(), probeLink(context.relay), probeBattery()]);
      const { model, promptTokens, expectedOutputTokens, replyLimit } = step;
      if (times !== this.#times) return; // the generation ended meanwhile
      const decodeTps = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000);
      // The step's held prefix, keyed once for the whole watch: a node holding it continues the reply sooner.
      const { nodes, prefixKeys } = withStepPrefix(step, await this.#fleet(context, model, decodeTps, link, battery));
      this.#nodes = nodes;
      this.#context = context;
      if (times !== this.#times) return;
      // The watch counts from here: the tokens that set the estimate are already spent.
      this.#watch = new GenerationWatch({
        step: { sessionId: 'live', model, promptTokens, expectedOutputTokens: Math.max(0, expectedOutputTokens - times.length), kvBytesPerToken: 0, ...(prefixKeys ? { prefixKeys } : {}) },
        replyLimit: Math.max(0, replyLimit - times.length),
        nodes: this.#nodes,
        prefs: context.prefs,
        current: THIS_DEVICE,
        now: () => this.#now(),
      });
    } catch {
      // No relay, no fleet: the session simply stays here; "where it runs" tells the user why.
    }
  }

  /** This device at `decodeTps`, and the relay's nodes it may use. */
  async #fleet(context: AutoPlacementContext, model: string, decodeTps: number, link: LinkProbe, battery: { level: number; charging: boolean } | undefined): Promise<NodeProfile[]> {
    return [thisDeviceNode(model, decodeTps, battery ? { battery } : {}), ...(await relayFleet(context.relay, context.space, link, context.self))];
  }

  /** The run placement that sends the session to the decided node. */
  #where(decision: Decision): RunPlacement | undefined {
    const node = this.#nodes.find((n) => n.id === decision.nodeId);
    const space = this.#context?.space;
    if (node?.kind === 'my-device' && space) return { space, node: node.id, cloud: false };
    return { node: decision.nodeId };
  }
}
