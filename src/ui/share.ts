/**
 * Sharing a session from the UI: publish it to the relay (encrypted on this device; an earlier share of the same
 * session is updated, so its link stays the same and only new objects travel), then its link and QR code. The
 * relay client and the QR encoder load only when the user shares (they stay out of the initial bundle).
 */
import type { LocalData } from '../browser/local-data.ts';
import { isFerryError } from '../core/errors.ts';

export interface ShareResult {
  link: string;
  /** The link as an SVG QR code, made on this device from the link alone. */
  qrSvg: string;
  /** Objects uploaded by this share (0 when the relay already had everything). */
  uploaded: number;
}

export async function shareSession(app: LocalData, sessionId: string, relayUrl: string): Promise<ShareResult> {
  const [{ RelayClient, shareQrSvg }, { restorePublished, serializePublished }, { linkBase }] = await Promise.all([import('../browser/relay-client.ts'), import('../core/protocol/published-record.ts'), import('../browser/relay-info.ts')]);
  const saved = await app.records.published(sessionId);
  // A damaged or foreign record is dropped: the session is published afresh under a new link.
  let previous;
  try {
    previous = saved ? restorePublished(saved) : undefined;
  } catch {
    previous = undefined;
  }
  const relay = relayUrl || globalThis.location.origin;
  // The link carries the address other devices reach the relay at, which may not be this page's.
  const client = new RelayClient(relay, { linkBase: await linkBase(relay) });
  // The link opens under the session's own title.
  const { title } = await app.sessions.get(sessionId);
  let shared;
  try {
    shared = await client.publish(app.store, sessionId, previous, title);
  } catch (err) {
    // The earlier share lives on another relay (the setting changed) or was removed: share under a new link.
    if (!previous || !isFerryError(err) || !['relay/unknown-snapshot', 'relay/bad-token'].includes(err.code)) throw err;
    shared = await client.publish(app.store, sessionId, undefined, title);
  }
  await app.records.savePublished(sessionId, serializePublished(shared));
  return { link: shared.link, qrSvg: await shareQrSvg(shared.link), uploaded: shared.sync.objects };
}
