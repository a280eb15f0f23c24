/**
 * The fleet a session can use, as node profiles the policy reads (DESIGN §7 "profiles"): this device, from its own
 * engine's measured speed and its battery; and the relay's workers — cloud workers and the devices of this
 * device's space — from the profiles they measured when they attached, with this device's round trip to the relay
 * (a short probe) and their current load as queue wait. Plain data in, validated profiles out.
 */
import type { WorkerList } from '../protocol/index.ts';
import { restoreNodeProfile, type NodeProfile } from './profile.ts';

/** This device, measured. */
export interface ThisDevice {
  readonly id: string;
  readonly name: string;
  readonly model: string;
  readonly prefillTps: number;
  readonly decodeTps: number;
  readonly measuredAt: number;
  readonly memoryBytes?: number;
  readonly battery?: { readonly level: number; readonly charging: boolean };
  readonly kvState: boolean;
}

export interface LinkProbe {
  /** Round trip from this device to the relay, ms. */
  readonly rttMs: number;
  /** Bandwidth to the relay, bytes/s (an estimate: a phone on a cellular link is far below loopback). */
  readonly bandwidthBps: number;
}

/** Memory is not reported by workers: treated as enough (a worker that lacks it refuses the run, clearly). */
const UNREPORTED_MEMORY = 2 ** 40;
/** What one queued run is assumed to cost a shared worker in wait, per run ahead of ours per slot, ms. */
const QUEUE_MS_PER_RUN = 2_000;

export function thisDeviceProfile(d: ThisDevice): NodeProfile {
  return restoreNodeProfile({
    id: d.id,
    name: d.name,
    kind: 'this-device',
    trust: 'own',
    // Not measured yet (the model has not run here): listed, but it cannot be estimated for any model.
    models: d.model && d.decodeTps > 0 ? { [d.model]: { prefillTps: Math.max(d.prefillTps, 1e-3), decodeTps: d.decodeTps, measuredAt: d.measuredAt } } : {},
    memoryBytes: d.memoryBytes ?? UNREPORTED_MEMORY,
    ...(d.battery ? { battery: d.battery } : {}),
    link: { rttMs: 0, bandwidthBps: 1e12 },
    price: { promptPer1k: 0, outputPer1k: 0 },
    queueWaitMs: 0,
    kvState: d.kvState,
  });
}

/**
 * Profiles of the relay's workers as this device sees them. `exclude` drops a node (this device's own node entry,
 * which is `thisDevice` already). Workers without a measured speed cannot be estimated and are left out.
 */
export function relayProfiles(list: WorkerList, link: LinkProbe, now: number, exclude?: string): NodeProfile[] {
  const out: NodeProfile[] = [];
  for (const w of list.workers) {
    if (w.id === exclude || w.profile.decodeTps <= 0 || w.profile.prefillTps <= 0) continue;
    const p = w.profile;
    const device = w.kind === 'device';
    out.push(restoreNodeProfile({
      id: w.id,
      name: p.name,
      kind: device ? 'my-device' : 'cloud',
      // A worker that charges for its tokens is a third party's; an unpriced one is the relay owner's own
      // hardware (`ferry start` on the user's machine, a `ferry worker` they attached): "my devices" may use it.
      trust: device || !(p.price && (p.price.promptPer1k > 0 || p.price.outputPer1k > 0)) ? 'own' : 'third-party',
      models: { [p.model]: { prefillTps: p.prefillTps, decodeTps: p.decodeTps, measuredAt: now } },
      memoryBytes: UNREPORTED_MEMORY,
      link: { rttMs: link.rttMs, bandwidthBps: link.bandwidthBps },
      price: { promptPer1k: p.price?.promptPer1k ?? 0, outputPer1k: p.price?.outputPer1k ?? 0 },
      queueWaitMs: Math.max(0, w.runs - p.slots + 1) * QUEUE_MS_PER_RUN,
      kvState: !device,
    }));
  }
  return out;
}
