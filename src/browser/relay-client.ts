/**
 * The browser's side of sharing: publish a session (encrypted on the device; only missing objects travel), make
 * its share link and QR code, and open a share link into the local store. The protocol work is the core's
 * (src/core/protocol), shared with the cloud worker; this file adds what only a page has: its own origin and the
 * address bar (the key is read from the #fragment and then removed from it).
 */
import QRCode from 'qrcode';
import { FerryError } from '../core/errors.ts';
import { RelayHttp, fetchSnapshot, parseShareLink, publishSession, shareLink, type FetchResult, type PublishResult, type PublishedSnapshot, type ShareLink } from '../core/protocol/index.ts';
import type { Store } from '../core/store/index.ts';

export type { FetchResult, PublishResult, PublishedSnapshot, ShareLink };

export interface Shared extends PublishResult {
  /** `https://<relay>/s/<id>#k=<key>`: whoever has it can open the session. */
  link: string;
}

export class RelayClient {
  readonly http: RelayHttp;
  readonly #linkBase: string | undefined;

  /**
   * `relay` defaults to the origin that served this page (the relay serves the PWA). `linkBase` is the address
   * share links carry, when other devices reach the relay elsewhere than this page does (its public address).
   */
  constructor(relay: string = globalThis.location.origin, opts: { fetch?: typeof fetch; timeoutMs?: number; linkBase?: string } = {}) {
    const { linkBase, ...http } = opts;
    this.http = new RelayHttp({ baseUrl: relay, ...http });
    this.#linkBase = linkBase;
  }

  /**
   * Publishes `sessionId` from `store`. Pass what an earlier publish of the same session returned to update that
   * snapshot (same link, only the new objects are uploaded); without it a new snapshot with a fresh key is made.
   * `title`: the session's, which the link then opens under.
   */
  async publish(store: Store, sessionId: string, previous?: PublishedSnapshot, title?: string): Promise<Shared> {
    const result = await publishSession(
      store,
      sessionId,
      this.http,
      previous ? { snapshotId: previous.snapshot.id, writeToken: previous.writeToken, key: previous.key } : undefined,
      title === undefined ? {} : { title },
    );
    return { ...result, link: shareLink(this.#linkBase ?? this.http.baseUrl, result.snapshot.id, result.key) };
  }

  /** Imports the snapshot a share link names (every branch, the head, component state) into `store`. */
  async open(link: ShareLink, store: Store): Promise<FetchResult> {
    if (new URL(link.relay).origin !== new URL(this.http.baseUrl).origin) {
      throw new FerryError('protocol/other-relay', `This link is for the relay at ${link.relay}; open it with a client for that relay.`);
    }
    return fetchSnapshot(this.http, link.snapshotId, link.key, store);
  }
}

/** Opens a share link with a client for the link's own relay. */
export function importShareLink(link: string | ShareLink, store: Store, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}): Promise<FetchResult> {
  const parsed = typeof link === 'string' ? parseShareLink(link) : link;
  return new RelayClient(parsed.relay, opts).open(parsed, store);
}

/**
 * When this page was opened from a share link, returns it and removes the key from the address bar (so it does
 * not linger in history or a screenshot); otherwise undefined. Throws 'protocol/bad-link' for a damaged link.
 */
export function takeShareLinkFromLocation(loc: Location = globalThis.location, history: History = globalThis.history): ShareLink | undefined {
  if (!/^\/s\/[^/]+\/?$/.test(loc.pathname)) return undefined;
  const link = parseShareLink(loc.href);
  history.replaceState(history.state, '', loc.pathname + loc.search);
  return link;
}

/** The share link as an SVG QR code (error correction M: survives a scuffed screen). */
export function shareQrSvg(link: string): Promise<string> {
  return QRCode.toString(link, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
}
