/**
 * `POST /api/v2/url-fetch {url}`: the relay fetches a public web page or file for the PWA (a source for a survey or
 * a podcast), which cannot read most sites itself. The answer is the body as it came, with its media type and the
 * final address; refusals (a private address, a type that is not text, Markdown, HTML or PDF, too large, too slow)
 * are typed errors. Rate-limited harder than the rest of the API: each call makes the relay fetch from the web.
 */
import type { FastifyInstance } from 'fastify';
import { FINAL_URL_HEADER, LIMITS, UrlFetchRequestSchema, parseWire, urlFetchPaths } from '../../src/core/protocol/index.ts';
import type { AddressPolicy } from '../web/address-policy.ts';
import { fetchUrl } from '../web/url-fetcher.ts';

export interface UrlFetchRoutesOptions {
  policy: AddressPolicy;
  /** Fetches per minute per client; 0: only the relay's general limit applies. */
  perMinute: number;
}

export async function urlFetchRoutes(app: FastifyInstance, opts: UrlFetchRoutesOptions): Promise<void> {
  const limit = opts.perMinute > 0 ? { config: { rateLimit: { max: opts.perMinute, timeWindow: 60_000 } } } : {};
  app.post(urlFetchPaths.fetch, { bodyLimit: LIMITS.maxJsonBody, ...limit }, async (request, reply) => {
    const { url } = parseWire(UrlFetchRequestSchema, request.body, 'The request');
    const fetched = await fetchUrl(url, { policy: opts.policy });
    request.log.info({ url: fetched.url, bytes: fetched.bytes.length, mediaType: fetched.mediaType }, 'fetched a source');
    return reply
      .header('content-type', fetched.charset ? `${fetched.mediaType}; charset=${fetched.charset}` : fetched.mediaType)
      .header(FINAL_URL_HEADER, fetched.url)
      .header('cache-control', 'no-store')
      .header('content-disposition', 'attachment')
      .send(Buffer.from(fetched.bytes.buffer, fetched.bytes.byteOffset, fetched.bytes.byteLength));
  });
}
