/**
 * What the "Where it runs" panel shows: this device (the engine it would use and why, the session's model, its
 * measured speed), the relay's cloud workers and this device's space's devices with their measured speed and this
 * page's round trip to the relay (as node profiles: core/placement/fleet.ts), and what placement does with the session
 * next and why (placement-line.ts). Loaded only when the panel opens.
 */
import { placementPrefs, type Settings } from '../browser/settings.ts';
import { chooseEngine, offloadVerdict, probeDevice, sessionEngine, type SessionEngine } from '../browser/llm/device-probe.ts';
import { FerryError, isFerryError } from '../core/errors.ts';
import { relayProfiles, type NodeProfile, type Price } from '../core/placement/index.ts';
import { cloudMoveFor, decideNextStep, nextStep, thisDeviceNode } from '../browser/next-step.ts';
import { SPECULATIVE } from '../browser/placement.ts';
import { probeLink } from '../browser/placement-probe.ts';
import { placementLine, type PlacementFacts } from './placement-line.ts';
import { parseWire, SPACE_HEADER, WorkerListSchema, workerPaths, type RunPlacement } from '../core/protocol/index.ts';
import { nodeOffer } from './device-node.svelte.ts';
import type { Session } from '../core/session/index.ts';
import { describeError, type UiError } from './errors.ts';

export interface DeviceView {
  engine: SessionEngine;
  engineWhy: string;
  /** The session's model ('' until one is chosen). */
  model: string;
  /** Measured decode speed of the session's model here (its newest generation here); null until it ran here. */
  decodeTps: number | null;
}

export interface WorkerView {
  id: string;
  /** A cloud worker, or one of this device's space's devices offering itself as a node. */
  kind: 'cloud' | 'device';
  name: string;
  embedded: boolean;
  engine: string;
  device: string;
  model: string;
  prefillTps: number;
  decodeTps: number;
  runs: number;
  /** What it charges for tokens; null: free (the user's own hardware, or a worker that sets no price). */
  price: Price | null;
}

export interface WhereItRunsView {
  device: DeviceView;
  relay: string;
  /** Best of a few round trips from this page to the relay; null when it could not be reached. */
  rttMs: number | null;
  workers: WorkerView[];
  /** What the current branch's steps have cost on paid workers, USD. */
  spentUsd: number;
  relayError: UiError | null;
  /** What placement does with the session next, and why (placement-line.ts). */
  placement: string;
  /**
   * Where "Move to the cloud worker" sends the session, or why no cloud worker may take it under the user's privacy
   * and budget; null when the relay lists none. When the settings allow every cloud worker the relay picks one (and
   * moves the run on if it goes); otherwise the run is pinned to the one the policy picks.
   */
  cloudMove: { where: RunPlacement | undefined } | { blocked: string } | null;
}

const TIMEOUT_MS = 5000;

async function fetchJson(url: string, headers: Record<string, string> = {}): Promise<unknown> {
  const res = await fetch(url, { cache: 'no-store', headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new FerryError('relay/unreachable', `The relay answered ${res.status} for ${new URL(url).pathname}; it may be an older version. Update it, or check the relay URL in Settings.`);
  return res.json();
}

/**
 * The panel's view of `session` as it stands now. `placement` is where it runs and `held` whether the person brought it
 * back by hand (the session host's): with the settings and the session's own next step (next-step.ts, as automatic
 * placement reads them) they make the placement line; `sessionKey` keys its held prefix.
 */
export async function loadWhereItRuns(session: Session, settings: Settings, where: { placement: PlacementFacts['placement']; held: boolean; sessionKey?: Uint8Array | undefined }): Promise<WhereItRunsView> {
  const relay = (settings.relayUrl || globalThis.location.origin).replace(/\/+$/, '');
  const [probe, head, step] = await Promise.all([probeDevice(), session.head().then((id) => session.checkpoint(id)), nextStep(session, settings, where.sessionKey)]);
  const choice = sessionEngine(chooseEngine(probe), settings, probe.webgpu.available ? offloadVerdict(probe) : null);
  const device: DeviceView = { engine: choice.engine, engineWhy: choice.reason, model: step.model, decodeTps: step.decodeTps };

  let rttMs: number | null = null;
  let workers: WorkerView[] = [];
  let relayError: UiError | null = null;
  let fleet: NodeProfile[] = [];
  try {
    const link = await probeLink(relay);
    rttMs = link.rttMs;
    // This device's space: its other devices offering themselves are listed (and may take the session) too.
    const context = await nodeOffer.placementContext();
    const list = parseWire(WorkerListSchema, await fetchJson(`${relay}${workerPaths.list}`, { [SPACE_HEADER]: context.space }), "The relay's worker list", 'relay/bad-response');
    workers = list.workers
      .filter((w) => w.id !== context.self)
      .map((w) => ({ id: w.id, kind: w.kind, name: w.profile.name, embedded: w.embedded, engine: w.profile.engine, device: w.profile.device, model: w.profile.model, prefillTps: w.profile.prefillTps, decodeTps: w.profile.decodeTps, runs: w.runs, price: w.profile.price ?? null }));
    fleet = relayProfiles(list, link, Date.now(), context.self);
  } catch (err) {
    relayError = describeError(isFerryError(err) ? err : new FerryError('relay/unreachable', `The relay at ${relay} could not be reached (${err instanceof Error ? err.message : String(err)}). Check the connection, or the relay URL in Settings.`));
  }

  const next = { ...step, model: step.model || workers[0]?.model || 'no model chosen' };
  const prefs = placementPrefs(settings);
  let decision: PlacementFacts['decision'];
  try {
    const here = thisDeviceNode(step.model, step.decodeTps ?? 0, { memoryBytes: (probe.deviceMemoryGiB ?? 4) * 2 ** 30 });
    // Running here speculatively, the policy weighs staying so (its hysteresis is for the mode it runs in now).
    decision = decideNextStep(next, here, fleet, prefs, where.placement.state === 'here' && where.placement.name === SPECULATIVE);
  } catch (err) {
    decision = { problem: describeError(err).message };
  }
  let cloudMove: WhereItRunsView['cloudMove'] = null;
  if (fleet.some((n) => n.kind === 'cloud')) {
    try {
      cloudMove = { where: cloudMoveFor(session.id, next, fleet, prefs) };
    } catch (err) {
      cloudMove = { blocked: describeError(err).message };
    }
  }
  const placement = placementLine({ privacy: settings.privacy, placement: where.placement, measuredTps: step.decodeTps, held: where.held, decision });
  return { device, relay, rttMs, workers, spentUsd: head.counters.costMicros / 1e6, relayError, placement, cloudMove };
}
