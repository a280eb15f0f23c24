/**
 * Automatic placement of a live session on this device (DESIGN §7 "when": during a generation, when the measured
 * rate falls well short of the estimate, migrate live). It watches the session's local generations: the first
 * tokens of each set this device's estimate (what it does now, not what it did at start-up); then the fleet is
 * probed — the relay's cloud workers and the devices of this device's space, with their measured speeds and the
 * round trip to the relay — and a GenerationWatch compares every following token's rate with the estimate. When
 * this device slows well below it (the user capped its CPU, the phone got hot) and another node the user's
 * privacy setting allows wins by more than the hysteresis, `move` is called with that node and the reason; the
 * mover cuts the generation and the target continues it. A private session ("this device only") never moves.
 */
import type { NodeProfile, PlacementPrefs } from '../core/placement/index.ts';
import { GenerationWatch, thisDeviceProfile, type Decision } from '../core/placement/index.ts';
import type { RunPlacement } from '../core/protocol/index.ts';
import type { RuntimeEvent } from '../core/runtime/runtime.ts';
import { probeBattery, probeLink, relayFleet } from './placement-probe.ts';

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
  /** The session's model id (its checkpoints record it) and how many tokens a reply may take. */
  step(): Promise<{ model: string; expectedOutputTokens: number }>;
  move(where: RunPlacement | undefined, decision: Decision): void;
  /** A re-decision that kept the session here, for "where it runs" to show. */
  onDecision?(decision: Decision): void;
}

/** Tokens of a generation that set this device's estimate before the watch starts. */
const BASELINE_TOKENS = 16;
const THIS_DEVICE = 'this-device';

export class AutoPlacer {
  #times: number[] = [];
  #watch: GenerationWatch | undefined;
  #preparing = false;
  /** Set once a move was asked for: nothing more until the next generation. */
  #done = false;
  /** The fleet and the user's choices the watch decides with. */
  #nodes: NodeProfile[] = [];
  #context: AutoPlacementContext | undefined;

  constructor(private readonly opts: AutoPlacerOptions) {}

  /** One of the session's events on this device. */
  event(event: RuntimeEvent): void {
    if (event.type === 'step' || event.type === 'generation') return this.#reset();
    if (event.type !== 'token' || this.#done) return;
    if (this.#watch) {
      const decision = this.#watch.token();
      if (decision) {
        this.#done = true;
        this.opts.move(this.#where(decision), decision);
      } else if (this.#watch.last) this.opts.onDecision?.(this.#watch.last);
      return;
    }
    this.#times.push(performance.now());
    if (this.#times.length === BASELINE_TOKENS && !this.#preparing) void this.#prepare();
  }

  #reset(): void {
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
      const [{ model, expectedOutputTokens }, link, battery] = await Promise.all([this.opts.step(), probeLink(context.relay), probeBattery()]);
      if (times !== this.#times) return; // the generation ended meanwhile
      const decodeTps = (times.length - 1) / ((times.at(-1)! - times[0]!) / 1000);
      const here = thisDeviceProfile({ id: THIS_DEVICE, name: 'this device', model, prefillTps: decodeTps * 10, decodeTps, measuredAt: Date.now(), ...(battery ? { battery } : {}), kvState: false });
      this.#nodes = [here, ...(await relayFleet(context.relay, context.space, link, context.self))];
      this.#context = context;
      if (times !== this.#times) return;
      this.#watch = new GenerationWatch({
        step: { sessionId: 'live', model, promptTokens: 512, expectedOutputTokens: Math.max(0, expectedOutputTokens - times.length), kvBytesPerToken: 0 },
        nodes: this.#nodes,
        prefs: context.prefs,
        current: THIS_DEVICE,
      });
    } catch {
      // No relay, no fleet: the session simply stays here; "where it runs" tells the user why.
    }
  }

  /** The run placement that sends the session to the decided node. */
  #where(decision: Decision): RunPlacement | undefined {
    const node = this.#nodes.find((n) => n.id === decision.nodeId);
    const space = this.#context?.space;
    if (node?.kind === 'my-device' && space) return { space, node: node.id, cloud: false };
    return { node: decision.nodeId };
  }
}
