/**
 * The browser's side of the relay: publish a session (encrypted on the device; only missing objects travel),
 * make its share link and QR code, and open a share link into the local store. The protocol work is the core's
 * (src/core/protocol), shared with the cloud worker; this file adds what only a page has: its own origin, the
 * address bar (the key is read from the #fragment and then removed from it), and a place to keep what was
 * published so the next publish of the same session updates it.
 */
import QRCode from 'qrcode';
import * as v from 'valibot';
import { FerryError } from '../core/errors.ts';
import {
  RelayHttp,
  SnapshotRecordSchema,
  WriteTokenSchema,
  fetchSnapshot,
  fromBase64Url,
  parseShareLink,
  parseWire,
  publishSession,
  shareLink,
  toBase64Url,
  type FetchResult,
  type PublishResult,
  type PublishedSnapshot,
  type RunMessage,
  type RunRecord,
  type ShareLink,
  type RunPlacement,
  type StartRunRequest,
  RunMessageSchema,
} from '../core/protocol/index.ts';
import type { Store } from '../core/store/index.ts';

export type { FetchResult, PublishResult, PublishedSnapshot, RunMessage, RunRecord, ShareLink };

export interface Shared extends PublishResult {
  /** `https://<relay>/s/<id>#k=<key>`: whoever has it can open the session. */
  link: string;
}

export class RelayClient {
  readonly http: RelayHttp;

  /** `relay` defaults to the origin that served this page (the relay serves the PWA). */
  constructor(relay: string = globalThis.location.origin, opts: { fetch?: typeof fetch; timeoutMs?: number } = {}) {
    this.http = new RelayHttp({ baseUrl: relay, ...opts });
  }

  /**
   * Publishes `sessionId` from `store`. Pass what an earlier publish of the same session returned to update that
   * snapshot (same link, only the new objects are uploaded); without it a new snapshot with a fresh key is made.
   */
  async publish(store: Store, sessionId: string, previous?: PublishedSnapshot): Promise<Shared> {
    const result = await publishSession(
      store,
      sessionId,
      this.http,
      previous ? { snapshotId: previous.snapshot.id, writeToken: previous.writeToken, key: previous.key } : undefined,
    );
    return { ...result, link: shareLink(this.http.baseUrl, result.snapshot.id, result.key) };
  }

  /**
   * Moves a published session to the relay's cloud worker (or where `where` places it: a device of the user's space) from the snapshot (the key goes to the worker
   * for this run only), runs `input`, and publishes every checkpoint to the same snapshot. Follow it with
   * `followRun`; take it back with `handBack`, then `open` the snapshot again.
   */
  resumeOnCloud(published: PublishedSnapshot, input: StartRunRequest['input'], options: { where?: RunPlacement | undefined; maxTokens?: number | undefined } = {}): Promise<RunRecord> {
    const { where, maxTokens } = options;
    return this.http.startRun({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input, ...(where ? { where } : {}), ...(maxTokens ? { maxTokens } : {}) });
  }

  handBack(runId: string, published: PublishedSnapshot): Promise<RunRecord> {
    return this.http.stopRun(runId, published.writeToken);
  }

  /**
   * Streams a run's events from `from` (a reconnecting client passes the next seq it needs, and misses nothing).
   * Resolves when the run ends (the relay closes the stream normally); rejects if the connection fails, with the
   * seq to resume from in the error's details.
   */
  followRun(runId: string, onMessage: (m: RunMessage) => void, opts: { from?: number; WebSocket?: typeof WebSocket; signal?: AbortSignal } = {}): Promise<void> {
    const Ws = opts.WebSocket ?? globalThis.WebSocket;
    let next = opts.from ?? 0;
    return new Promise((resolve, reject) => {
      const ws = new Ws(this.http.runEventsUrl(runId, next));
      const fail = (why: string): void => reject(new FerryError('relay/stream-lost', `The run's event stream was lost (${why}); follow it again from seq ${next}.`, { details: { next } }));
      opts.signal?.addEventListener('abort', () => ws.close(1000), { once: true });
      ws.onmessage = (e: MessageEvent) => {
        try {
          const m = parseWire(RunMessageSchema, JSON.parse(String(e.data)), 'A run event', 'relay/bad-response');
          next = m.seq + 1;
          onMessage(m);
        } catch (err) {
          ws.close(1002);
          reject(err);
        }
      };
      ws.onerror = () => fail('connection error');
      ws.onclose = (e: CloseEvent) => (e.code === 1000 ? resolve() : fail(`closed with code ${e.code}`));
    });
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

const StoredPublishedSchema = v.strictObject({
  v: v.literal(1),
  snapshot: SnapshotRecordSchema,
  writeToken: WriteTokenSchema,
  key: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)),
});

/** What to keep on the device (IndexedDB, never the relay) to update a snapshot later. Holds secrets. */
export function serializePublished(p: PublishedSnapshot): string {
  return JSON.stringify({ v: 1, snapshot: p.snapshot, writeToken: p.writeToken, key: toBase64Url(p.key) });
}

export function restorePublished(text: string): PublishedSnapshot {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FerryError('protocol/bad-published', 'The saved share record is not JSON; publish the session again.');
  }
  const p = parseWire(StoredPublishedSchema, value, 'The saved share record', 'protocol/bad-published');
  return { snapshot: p.snapshot, writeToken: p.writeToken, key: fromBase64Url(p.key) };
}
