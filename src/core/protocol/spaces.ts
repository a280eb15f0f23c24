/**
 * Spaces (DESIGN §7 "devices as nodes", §9 "Keys and members"): a user's own devices pair into a space by sharing
 * a space secret — 256 random bits, carried in a pairing link's #fragment (`https://<relay>/#space=<secret>`) or its
 * QR code, so the relay that serves the link never sees it.
 *
 * From the secret every member derives the same Ed25519 key pair (HKDF → the private key's seed). The space id is a
 * hash of the public key, so the relay can check that a public key belongs to a space without being told, and keeps
 * nothing: the public key is the verifier. A device offering itself as a node proves membership by signing the
 * nonce the relay sent on its connection (challenge–response); the id alone — which the relay, and anyone who sees
 * a run placed in the space, knows — proves nothing. Knowing the secret is what makes a device part of the space.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';
import { concatBytes } from './bytes.ts';

export const SPACE_SECRET_BYTES = 32;

/** A space id: base64url of SHA-256 over a domain tag and the secret (43 characters). */
export const SpaceIdSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 43 base64url characters'));

const utf8 = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);
const ID_DOMAIN = utf8('ferry-space-v2\0');
const PROOF_DOMAIN = utf8('ferry-space-proof-v1\0');
/** PKCS#8 for an Ed25519 private key: this prefix, then the 32-byte seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/** A member's public key: 32 bytes of Ed25519, base64url. */
export const SpaceMemberKeySchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be an Ed25519 public key as 43 base64url characters'));
/** A proof: an Ed25519 signature, base64url (86 characters). */
export const SpaceProofSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{86}$/, 'must be an Ed25519 signature as 86 base64url characters'));
/** The relay's challenge on a node's connection: 32 random bytes, base64url. */
export const SpaceNonceSchema = v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes as base64url'));

/** What a member sends when it attaches: the space, its public key, and the signature over the relay's nonce. */
export const SpaceMembershipSchema = v.strictObject({ id: SpaceIdSchema, key: SpaceMemberKeySchema, proof: SpaceProofSchema });
export type SpaceMembership = v.InferOutput<typeof SpaceMembershipSchema>;

/** A member of a space: its id and public key, and a way to answer the relay's challenge. */
export interface SpaceCredentials {
  readonly id: string;
  readonly key: string;
  /** The membership proof for the relay's `nonce` on a connection that announces worker key `workerKey`. */
  prove(nonce: string, workerKey: string): Promise<SpaceMembership>;
}

/** A new space secret, base64url. */
export function createSpaceSecret(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(SPACE_SECRET_BYTES)));
}

function secretBytes(secret: string): Uint8Array {
  const bytes = fromBase64Url(secret, 'protocol/bad-space');
  if (bytes.length !== SPACE_SECRET_BYTES) throw new FerryError('protocol/bad-space', `A space secret is ${SPACE_SECRET_BYTES} bytes; this one is ${bytes.length}. Copy the whole pairing link again.`);
  return bytes;
}

/** The space id of a member's public key (raw bytes). */
async function idOfKey(key: Uint8Array): Promise<string> {
  return toBase64Url(new Uint8Array(await crypto.subtle.digest('SHA-256', concatBytes(ID_DOMAIN, key))));
}

/** What a proof signs: the domain, the relay's nonce, and the worker key the connection announced. */
const proofMessage = (nonce: string, workerKey: string): Uint8Array<ArrayBuffer> => concatBytes(PROOF_DOMAIN, fromBase64Url(nonce, 'protocol/bad-space'), utf8(workerKey));

/** The space's signing key, derived from the secret: every member derives the same one. */
export async function spaceCredentials(secret: string): Promise<SpaceCredentials> {
  const master = await crypto.subtle.importKey('raw', secretBytes(secret) as Uint8Array<ArrayBuffer>, 'HKDF', false, ['deriveBits']);
  const seed = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: utf8('ferry/space/v2'), info: utf8('member-signing-key') }, master, 256));
  const pkcs8 = concatBytes(ED25519_PKCS8_PREFIX, seed);
  // Imported once extractable to read the public half (WebCrypto derives it), then kept non-extractable to sign.
  const jwk = await crypto.subtle.exportKey('jwk', await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, true, ['sign']));
  const signing = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
  const key = jwk.x!;
  const id = await idOfKey(fromBase64Url(key, 'protocol/bad-space'));
  return {
    id,
    key,
    async prove(nonce, workerKey) {
      const signature = new Uint8Array(await crypto.subtle.sign('Ed25519', signing, proofMessage(nonce, workerKey)));
      return { id, key, proof: toBase64Url(signature) };
    },
  };
}

/** The id the relay knows a space by; it cannot be turned back into the secret. */
export async function spaceIdOf(secret: string): Promise<string> {
  return (await spaceCredentials(secret)).id;
}

/**
 * Whether `membership` proves membership of its space on a connection whose challenge was `nonce` and which
 * announced worker key `workerKey`: the key hashes to the space id, and the signature over the challenge verifies.
 */
export async function verifySpaceMembership(membership: SpaceMembership, nonce: string, workerKey: string): Promise<boolean> {
  try {
    const key = fromBase64Url(membership.key, 'protocol/bad-space');
    if (key.length !== 32 || (await idOfKey(key)) !== membership.id) return false;
    const publicKey = await crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify('Ed25519', publicKey, fromBase64Url(membership.proof, 'protocol/bad-space') as Uint8Array<ArrayBuffer>, proofMessage(nonce, workerKey));
  } catch {
    return false;
  }
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
