/**
 * How other devices reach a relay, as it says itself (GET /api/v2/info): share and pairing links use its public
 * address, never whatever address this page happened to be opened with.
 */
import * as v from 'valibot';
import { RelayInfoSchema, infoPath, type RelayInfo } from '../core/protocol/index.ts';

export type { RelayInfo };

/** The relay's answer, or undefined when it cannot be had (offline, or a relay too old to say). */
export async function fetchRelayInfo(relay: string, fetchFn: typeof fetch = (i, init) => globalThis.fetch(i, init)): Promise<RelayInfo | undefined> {
  try {
    const res = await fetchFn(`${relay.replace(/\/+$/, '')}${infoPath}`, { cache: 'no-store', signal: AbortSignal.timeout(5000) });
    if (!res.ok) return undefined;
    const parsed = v.safeParse(RelayInfoSchema, await res.json());
    return parsed.success ? parsed.output : undefined;
  } catch {
    return undefined;
  }
}

/** The address links to `relay` should carry: its public one when it knows one, else `relay` as reached from here. */
export async function linkBase(relay: string, fetchFn?: typeof fetch): Promise<string> {
  return (await fetchRelayInfo(relay, fetchFn))?.publicUrl ?? relay.replace(/\/+$/, '');
}
