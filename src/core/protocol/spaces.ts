/**
 * Spaces (DESIGN §7 "devices as nodes"): a user's own devices pair into a space by sharing a space secret — 256
 * random bits, carried in a pairing link's #fragment (`https://<relay>/#space=<secret>`) or its QR code, so the
 * relay that serves the link never sees it. A device that offers itself as a node tells the relay only the space
 * id, a one-way hash of the secret: the relay groups nodes by it and dispatches a run to a device node only when
 * the run names that space. Knowing the secret (hence the id) is what makes a device part of the space.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';

export const SPACE_SECRET_BYTES = 32;

/** A space id: base64url of SHA-256 over a domain tag and the secret (43 characters). */
export const SpaceIdSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 43 base64url characters'));

const DOMAIN = new TextEncoder().encode('ferry-space-v1\0');

/** A new space secret, base64url. */
export function createSpaceSecret(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(SPACE_SECRET_BYTES)));
}

function secretBytes(secret: string): Uint8Array {
  const bytes = fromBase64Url(secret, 'protocol/bad-space');
  if (bytes.length !== SPACE_SECRET_BYTES) throw new FerryError('protocol/bad-space', `A space secret is ${SPACE_SECRET_BYTES} bytes; this one is ${bytes.length}. Copy the whole pairing link again.`);
  return bytes;
}

/** The id the relay knows a space by; it cannot be turned back into the secret. */
export async function spaceIdOf(secret: string): Promise<string> {
  const bytes = secretBytes(secret);
  const input = new Uint8Array(DOMAIN.length + bytes.length);
  input.set(DOMAIN);
  input.set(bytes, DOMAIN.length);
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', input)));
}

/** The link (and QR code) that pairs another device into the space. */
export function pairingLink(relay: string, secret: string): string {
  secretBytes(secret);
  return `${new URL(relay).origin}/#space=${secret}`;
}

/** The relay and secret in a pairing link; a typed error says what is wrong with anything else. */
export function parsePairingLink(link: string): { relay: string; secret: string } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new FerryError('protocol/bad-space', 'This is not a Ferry pairing link (not a URL); it looks like https://<relay>/#space=<secret>.');
  }
  const secret = new URLSearchParams(url.hash.slice(1)).get('space');
  if (!secret) throw new FerryError('protocol/bad-space', 'This link holds no #space= secret; it looks like https://<relay>/#space=<secret>. Copy the whole pairing link again.');
  secretBytes(secret);
  return { relay: url.origin, secret };
}
