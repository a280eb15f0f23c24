/**
 * Share links: `https://<relay>/s/<snapshot id>#k=<session key>`. The key is only ever in the #fragment, which
 * browsers never send to a server, so the relay that serves the link never learns it.
 */
import { FerryError } from '../errors.ts';
import { SESSION_KEY_BYTES } from '../snapshot/index.ts';
import { fromBase64Url, toBase64Url } from './base64url.ts';

export interface ShareLink {
  /** The relay's origin, e.g. "https://ferry.example". */
  relay: string;
  snapshotId: string;
  key: Uint8Array;
}

export function shareLink(relay: string, snapshotId: string, key: Uint8Array): string {
  const origin = new URL(relay).origin;
  return `${origin}/s/${snapshotId}#k=${toBase64Url(key)}`;
}

const bad = (why: string): FerryError => new FerryError('protocol/bad-link', `This is not a Ferry share link (${why}); it looks like https://<relay>/s/<id>#k=<key>. Copy the whole link again.`);

export function parseShareLink(link: string): ShareLink {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw bad('not a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw bad(`scheme ${url.protocol}`);
  const m = /^\/s\/([0-9a-f]{40})\/?$/.exec(url.pathname);
  if (!m) throw bad('no /s/<id> path');
  const k = new URLSearchParams(url.hash.slice(1)).get('k');
  if (!k) throw bad('no #k= key in the fragment');
  const key = fromBase64Url(k, 'protocol/bad-link');
  if (key.length !== SESSION_KEY_BYTES) throw bad(`a ${key.length}-byte key, expected ${SESSION_KEY_BYTES}`);
  return { relay: url.origin, snapshotId: m[1]!, key };
}
