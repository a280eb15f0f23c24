/**
 * The names other devices on the network may use for this machine: its host name (and its mDNS form, name.local),
 * localhost, and the addresses of its network interfaces.
 */
import os from 'node:os';
import type { Names } from './certificates.ts';

type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** Every address of the machine other devices can use, IPv4 before IPv6; link-local IPv6 needs a zone id and is left out. */
function addresses(interfaces: Interfaces): string[] {
  const all = Object.values(interfaces).flatMap((list) => list ?? []);
  const external = all.filter((i) => !i.internal && !(i.family === 'IPv6' && i.address.toLowerCase().startsWith('fe80:')));
  return [...external.filter((i) => i.family === 'IPv4'), ...external.filter((i) => i.family === 'IPv6')].map((i) => i.address);
}

/** What a local server certificate covers. `extra` adds a name the operator chose (the public URL's host). */
export function machineNames(extra: string[] = [], interfaces: Interfaces = os.networkInterfaces(), hostname: string = os.hostname()): Names {
  const host = hostname.toLowerCase();
  const dns = ['localhost', host, ...(host.includes('.') ? [] : [`${host}.local`])];
  const ips = ['127.0.0.1', '::1', ...addresses(interfaces)];
  for (const name of extra) (/^[\d.]+$|:/.test(name) ? ips : dns).push(name.replace(/^\[|\]$/g, '').toLowerCase());
  return { dns: [...new Set(dns)], ips: [...new Set(ips)] };
}

const privateV4 = /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/;

/** The address a phone on the same network most likely reaches this machine at: a private IPv4 first. */
export function lanAddress(interfaces: Interfaces = os.networkInterfaces()): string | undefined {
  const found = addresses(interfaces);
  return found.find((a) => privateV4.test(a)) ?? found.find((a) => !a.includes(':')) ?? found[0];
}

/** True when `host` names this machine's loopback interface only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127\./.test(h);
}

/** True when the relay's listen address takes connections on every interface. */
export const isWildcardHost = (host: string): boolean => host === '0.0.0.0' || host === '::' || host === '[::]';
