/**
 * Capability ids and write tokens. Ids are random (unguessable, so knowing one is the right to read); tokens are
 * random and shown once, and the relay keeps only their SHA-256, so a leaked database does not grant writes.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { SNAPSHOT_ID_BYTES, WRITE_TOKEN_BYTES } from '../../src/core/protocol/index.ts';

export const newSnapshotId = (): string => randomBytes(SNAPSHOT_ID_BYTES).toString('hex');
export const newWriteToken = (): string => randomBytes(WRITE_TOKEN_BYTES).toString('base64url');
export const hashToken = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** Constant-time: both sides are 32-byte digests, so neither the comparison nor the length leaks anything. */
export function tokenMatches(given: string, storedHash: Uint8Array): boolean {
  const digest = hashToken(given);
  return digest.length === storedHash.length && timingSafeEqual(digest, storedHash);
}
