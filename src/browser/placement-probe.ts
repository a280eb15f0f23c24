/**
 * This device's side of node profiles (DESIGN §7): its link to the relay (round trip from a few /healthz requests;
 * bandwidth from the Network Information API where the browser has it), its battery (Battery Status API, where
 * there is one), and the relay's fleet as this device may use it — the cloud workers and the nodes of its space.
 */
import { FerryError } from '../core/errors.ts';
import { relayProfiles, type LinkProbe, type NodeProfile } from '../core/placement/index.ts';
import { SPACE_HEADER, WorkerListSchema, parseWire, workerPaths } from '../core/protocol/index.ts';

/** When the browser does not say: a decent home connection, 10 MB/s. */
const DEFAULT_BANDWIDTH_BPS = 10e6;
const PINGS = 3;

/** Round trip to the relay (median of a few) and bandwidth. */
export async function probeLink(relay: string): Promise<LinkProbe> {
  const times: number[] = [];
  for (let i = 0; i < PINGS; i++) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${relay}/healthz`, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
      await res.arrayBuffer();
    } catch (cause) {
      throw new FerryError('relay/unreachable', `The relay at ${relay} could not be reached (${(cause as Error).message}); sessions stay on this device.`, { cause });
    }
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const downlinkMbps = (globalThis.navigator as (Navigator & { connection?: { downlink?: number } }) | undefined)?.connection?.downlink;
  return { rttMs: times[Math.floor(times.length / 2)]!, bandwidthBps: downlinkMbps && downlinkMbps > 0 ? (downlinkMbps * 1e6) / 8 : DEFAULT_BANDWIDTH_BPS };
}

/** The battery, where the browser tells (Chromium does; others do not). */
export async function probeBattery(): Promise<{ level: number; charging: boolean } | undefined> {
  const getBattery = (globalThis.navigator as (Navigator & { getBattery?: () => Promise<{ level: number; charging: boolean }> }) | undefined)?.getBattery;
  if (!getBattery) return undefined;
  try {
    const b = await getBattery.call(navigator);
    return { level: b.level, charging: b.charging };
  } catch {
    return undefined;
  }
}

/** The relay's nodes this device may use: cloud workers and its space's devices, except `self` (its own node). */
export async function relayFleet(relay: string, space: string | undefined, link: LinkProbe, self?: string): Promise<NodeProfile[]> {
  const res = await fetch(`${relay}${workerPaths.list}`, { headers: space ? { [SPACE_HEADER]: space } : {}, cache: 'no-store', signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new FerryError('relay/unreachable', `The relay answered ${res.status} for its workers.`);
  return relayProfiles(parseWire(WorkerListSchema, await res.json(), "The relay's worker list", 'relay/bad-response'), link, Date.now(), self);
}
