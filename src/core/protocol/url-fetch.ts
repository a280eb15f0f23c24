/**
 * A web page or file fetched by the relay for a browser (server/api/url-fetch.ts): the PWA cannot read most sites
 * itself (CORS), so it asks its relay, which fetches only public addresses, within the limits below, and answers
 * with the bytes as they came. The page reads them with its own file readers (text, Markdown, HTML, PDF).
 */
import * as v from 'valibot';
import { API_PREFIX } from './wire.ts';

export const urlFetchPaths = {
  /** POST { url } → the body's bytes, with Content-Type and the final address (after redirects) in a header. */
  fetch: `${API_PREFIX}/url-fetch`,
} as const;

/** The address the bytes came from after redirects. */
export const FINAL_URL_HEADER = 'x-ferry-final-url';

export const URL_FETCH_LIMITS = {
  /** Characters of a URL. */
  urlChars: 2048,
  /** Bytes of one body, after decompression. */
  maxBytes: 10 * 1024 * 1024,
  /** Redirects followed, each checked like the first address. */
  maxRedirects: 5,
  /** The whole fetch: connecting, every redirect and the body. */
  timeoutMs: 20_000,
} as const;

/** Media types the PWA can read as a source (text, Markdown, HTML, PDF); the rest are refused. */
export const URL_FETCH_TYPES: readonly string[] = ['text/plain', 'text/markdown', 'text/x-markdown', 'text/html', 'application/xhtml+xml', 'application/pdf'];

export const UrlFetchRequestSchema = v.strictObject({
  url: v.pipe(v.string(), v.minLength(1), v.maxLength(URL_FETCH_LIMITS.urlChars)),
});
export type UrlFetchRequest = v.InferOutput<typeof UrlFetchRequestSchema>;

/** What came back: the bytes, their media type (lower case, no parameters) and charset if given, and where from. */
export interface FetchedUrl {
  bytes: Uint8Array;
  mediaType: string;
  charset: string | undefined;
  url: string;
}

/** "text/html; charset=ISO-8859-1" → { mediaType: "text/html", charset: "iso-8859-1" }. */
export function parseContentType(header: string | null | undefined): { mediaType: string; charset: string | undefined } {
  const [type = '', ...params] = (header ?? '').split(';');
  const charset = params.map((p) => /^\s*charset\s*=\s*"?([^";\s]+)"?\s*$/i.exec(p)?.[1]).find((c) => c !== undefined);
  return { mediaType: type.trim().toLowerCase(), charset: charset?.toLowerCase() };
}
