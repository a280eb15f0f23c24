/**
 * The fleet a session can use, as node profiles the policy reads (DESIGN §7 "profiles"): this device, from its own
 * engine's measured speed and its battery; and the relay's workers — cloud workers and the devices of this
 * device's space — from the profiles they measured when they attached, with this device's round trip to the relay
 * (a short probe) and their current load as queue wait. Plain data in, validated profiles out.
 */
import { FerryError } from '../errors.ts';
import type { RunPlacement, WorkerList } from '../protocol/index.ts';
import { decide, type PendingStep, type PlacementPrefs } from './policy.ts';
import { chargesForTokens, restoreNodeProfile, type NodeProfile } from './profile.ts';
import { keyPrefixes, prefixBlockKeys } from '../llm/prefix-keys.ts';
import { deriveSessionKeys } from '../snapshot/keys.ts';

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
      trust: device || !chargesForTokens(p.price) ? 'own' : 'third-party',
      models: { [p.model]: { prefillTps: p.prefillTps, decodeTps: p.decodeTps, measuredAt: now } },
      memoryBytes: UNREPORTED_MEMORY,
      link: { rttMs: link.rttMs, bandwidthBps: link.bandwidthBps },
      price: { promptPer1k: p.price?.promptPer1k ?? 0, outputPer1k: p.price?.outputPer1k ?? 0 },
      queueWaitMs: Math.max(0, w.runs - p.slots + 1) * QUEUE_MS_PER_RUN,
      kvState: !device,
      // Keyed per session (llm/prefix-keys.ts keyPrefixes): they match a step's prefixKeys only when both were keyed
      // with the same session's key (heldPrefixKeys).
      ...(w.prefixes && w.prefixes.length > 0 ? { prefixes: w.prefixes, tokenizer: p.tokenizer } : {}),
      // The relay verifies drafts with its own engine, which its embedded worker runs, or routes them to an attached
      // worker whose profile says it verifies.
      ...(w.embedded || p.verifies === true ? { verifies: true } : {}),
    }));
  }
  return out;
}

/**
 * Where a move the user asks for ("Move to the cloud worker") may go, under their privacy and budget: with "my
 * devices", only the relay owner's own workers (unpriced: `ferry start` or `ferry worker` on the user's hardware),
 * never a third party's — automatic placement keeps such sessions on devices altogether. With "any" and every
 * worker within the budget, any cloud worker (the relay picks, and moves the run on if its worker goes); otherwise
 * pinned to the one the policy picks, so no worker attaching later can take it. Throws placement/no-node, saying
 * why, when none may take it.
 */
export function cloudPlacement(step: PendingStep, nodes: readonly NodeProfile[], prefs: PlacementPrefs): RunPlacement | undefined {
  const clouds = nodes.filter((n) => n.kind === 'cloud');
  const allowed = prefs.privacy === 'my-devices' ? clouds.filter((n) => n.trust === 'own') : clouds;
  if (allowed.length === 0 && clouds.length > 0) {
    throw new FerryError('placement/no-node', 'Every cloud worker of this relay charges for its tokens: a third party\'s, which your privacy setting ("My devices") keeps sessions away from. Allow "Any node" in Settings to move it there.');
  }
  const d = decide(step, allowed, prefs.privacy === 'my-devices' ? { ...prefs, privacy: 'any' } : prefs);
  return prefs.privacy === 'any' && d.candidates.every((c) => c.allowed) ? undefined : { node: d.nodeId };
}

/**
 * A pending step's prefixKeys as the relay's workers report theirs: the block keys of its prompt's tokens (on the
 * node's tokenizer), keyed with the session key whose runs left the prefix — the session's own for a rollback's
 * branch or a fork that keeps its key, the parent's for its children. A node holding that session's prefix then
 * lists the same values; under any other key nothing matches.
 */
export async function heldPrefixKeys(sessionKey: Uint8Array, promptTokens: readonly number[]): Promise<string[]> {
  return keyPrefixes((await deriveSessionKeys(sessionKey)).prefixes, prefixBlockKeys(promptTokens));
}
