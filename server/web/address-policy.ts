/**
 * Which network addresses the relay may fetch from for a browser: public unicast addresses only — never loopback,
 * private, link-local (cloud metadata services live at 169.254.169.254 and fd00:ec2::254), carrier-grade NAT,
 * multicast, reserved or unspecified ones, nor IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4, Teredo)
 * — unless the operator allows a range explicitly (`--fetch-allow`), or the relay listens on loopback only (the
 * default, a relay for this machine's own browser): then loopback targets are allowed too, since only someone on
 * this machine can ask, and could open them anyway. Ranges come from ipaddr.js's special-range tables, which track
 * the IANA registries.
 */
import ipaddr from 'ipaddr.js';
import { FerryError } from '../../src/core/errors.ts';

export interface AddressPolicy {
  /** Why `address` may not be fetched ("a loopback address"), or undefined when it may. */
  refusal(address: string): string | undefined;
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

const LOOPBACK: Cidr[] = [ipaddr.parseCIDR('127.0.0.0/8'), ipaddr.parseCIDR('::1/128')];

const NAMES: Record<string, string> = {
  loopback: 'a loopback address',
  private: 'a private-network address',
  linkLocal: 'a link-local address (where cloud metadata services answer)',
  uniqueLocal: 'a private-network (unique local) address',
  carrierGradeNat: 'a carrier-grade NAT address',
  unspecified: 'the unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
};

/**
 * `allow`: addresses ("127.0.0.1") or CIDR ranges ("10.0.0.0/8", "::1/128") fetched even though not public;
 * `localRelay`: the relay listens on loopback only, so loopback addresses are allowed as well.
 */
export function addressPolicy(allow: readonly string[] = [], opts: { localRelay?: boolean } = {}): AddressPolicy {
  const allowed = [...allow.map(parseAllowed), ...(opts.localRelay ? LOOPBACK : [])];
  return {
    refusal(address) {
      let ip: ipaddr.IPv4 | ipaddr.IPv6;
      try {
        // IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it is.
        ip = ipaddr.process(address);
      } catch {
        return 'not an IP address';
      }
      if (allowed.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits))) return undefined;
      const range = ip.range();
      return range === 'unicast' ? undefined : (NAMES[range] ?? `a special-purpose address (${range})`);
    },
  };
}

/** Checks one `--fetch-allow` entry; throws config/bad-fetch-allow with the fix. */
export function parseAllowed(entry: string): Cidr {
  const text = entry.trim();
  try {
    if (text.includes('/')) return ipaddr.parseCIDR(text);
    const ip = ipaddr.process(text);
    return [ip, ip.kind() === 'ipv4' ? 32 : 128];
  } catch {
    throw new FerryError('config/bad-fetch-allow', `"${entry}" is not an IP address or CIDR range: give addresses such as 127.0.0.1 or ranges such as 10.0.0.0/8 (--fetch-allow or FERRY_FETCH_ALLOW).`);
  }
}
