/**
 * Small values the relay carries for a session but must not read — a run's input, each of its events — sealed with
 * the session key in the same container as objects (AES-256-GCM, fresh IV), bound by the additional data to their
 * purpose (e.g. the run they belong to), so a relay cannot move one into another place where it would be read.
 */
import { decodeMsgpack, encodeCanonical } from '../session/index.ts';
import { decodeContainer, encodeContainer } from './container.ts';
import type { SessionKeys } from './keys.ts';

/** A run's event carries at most a generation's text and token ids. */
export const MAX_MESSAGE_BYTES = 4 << 20;

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

export function sealMessage(keys: SessionKeys, purpose: string, value: unknown): Promise<Uint8Array> {
  const payload = encodeCanonical(value);
  return encodeContainer(payload, { kind: 'message', keys, aad: utf8(purpose), compress: payload.length > 512 });
}

/** Opens a sealed message for `purpose`; a wrong key, purpose or any change to the bytes is a typed error. */
export async function openMessage(keys: SessionKeys, purpose: string, sealed: Uint8Array): Promise<unknown> {
  const payload = await decodeContainer(sealed, { kind: 'message', keys, aad: utf8(purpose), limits: { maxPayload: MAX_MESSAGE_BYTES } });
  return decodeMsgpack(payload, 'snapshot/bad-message', 'A sealed message');
}
