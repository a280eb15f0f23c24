/**
 * The component builds each relay ships, remembered per relay (its base URL). A move to the relay's workers leaves
 * those builds out of the upload (publishSession `omitRelayBuilds`), and asking for the list on every publish would
 * put a round trip on every move's path; the list changes only when the relay is deployed with another library.
 * A run whose worker then lacks a build fails with `relay/unknown-component`: its follower forgets the list
 * (`forgetRelayBuilds`), and the next publish asks again.
 */
import type { RelayHttp } from './http-client.ts';

const lists = new Map<string, Promise<ReadonlySet<string>>>();

/** The builds the relay ships, asked once per relay. A relay that cannot say (an older one) is taken to ship none, and is asked again next time. */
export function relayBuilds(relay: RelayHttp): Promise<ReadonlySet<string>> {
  const url = relay.baseUrl;
  let list = lists.get(url);
  if (!list) {
    const asked = relay.componentBuilds().then((ids): ReadonlySet<string> => new Set(ids));
    lists.set(url, asked);
    list = asked.catch(() => {
      if (lists.get(url) === asked) lists.delete(url);
      return new Set<string>();
    });
  }
  return list.catch(() => new Set<string>());
}

/** The relay at `baseUrl` answered that a build is missing: its list is asked for again at the next publish. */
export function forgetRelayBuilds(baseUrl: string): void {
  lists.delete(baseUrl);
}
