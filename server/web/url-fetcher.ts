/**
 * Fetches one public web page or file for a browser, within explicit limits: http(s) only, no credentials in the
 * address; every host resolved here and every address it resolves to checked against the policy before anything
 * is sent, and the connection pinned to that checked address (a second DNS answer cannot swap it); redirects
 * followed by hand, each one checked the same way; one deadline for the whole fetch; a media-type allow-list;
 * a byte cap on the body after decompression. Every refusal is a FerryError with its own code.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import zlib from 'node:zlib';
import { FerryError } from '../../src/core/errors.ts';
import { URL_FETCH_LIMITS, URL_FETCH_TYPES, parseContentType, type FetchedUrl } from '../../src/core/protocol/index.ts';
import type { AddressPolicy } from './address-policy.ts';

export interface UrlFetcherOptions {
  policy: AddressPolicy;
  maxBytes?: number;
  maxRedirects?: number;
  timeoutMs?: number;
  /** Every address of a host name; default: the system resolver (tests answer for names of their own). */
  resolve?: (hostname: string) => Promise<string[]>;
  userAgent?: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export async function fetchUrl(address: string, opts: UrlFetcherOptions): Promise<FetchedUrl> {
  const maxBytes = opts.maxBytes ?? URL_FETCH_LIMITS.maxBytes;
  const maxRedirects = opts.maxRedirects ?? URL_FETCH_LIMITS.maxRedirects;
  const timeoutMs = opts.timeoutMs ?? URL_FETCH_LIMITS.timeoutMs;
  const deadline = AbortSignal.timeout(timeoutMs);
  const timedOut = (): FerryError => new FerryError('fetch/timeout', `${address} did not answer in full within ${timeoutMs / 1000} s; try again, or download the file and add it from this device.`);
  let url = checkUrl(address);
  for (let redirects = 0; ; redirects++) {
    const pinned = await checkedAddress(url, opts);
    if (deadline.aborted) throw timedOut();
    const res = await get(url, pinned, deadline, opts.userAgent ?? 'Ferry relay (fetching a source for a Ferry user)').catch((err: unknown) => {
      throw deadline.aborted ? timedOut() : err;
    });
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      res.resume();
      const location = res.headers.location;
      if (!location) throw new FerryError('fetch/upstream-status', `${url.href} answered HTTP ${status} (a redirect) without saying where to.`);
      if (redirects >= maxRedirects) throw new FerryError('fetch/too-many-redirects', `${address} redirected more than ${maxRedirects} times; give the final address of the page.`);
      url = checkUrl(new URL(location, url).href);
      continue;
    }
    if (status < 200 || status > 299) {
      res.resume();
      throw new FerryError('fetch/upstream-status', `${url.href} answered HTTP ${status}${res.statusMessage ? ` (${res.statusMessage})` : ''}, not the page; check the address.`, { details: { status } });
    }
    const { mediaType, charset } = parseContentType(res.headers['content-type']);
    if (!URL_FETCH_TYPES.includes(mediaType)) {
      res.resume();
      throw new FerryError('fetch/type-not-allowed', `${url.href} is ${mediaType ? `"${mediaType}"` : 'of no stated type'}; a source must be text, Markdown, HTML or PDF (${URL_FETCH_TYPES.join(', ')}).`, { details: { mediaType } });
    }
    const declared = Number(res.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      res.destroy();
      throw tooLarge(url, maxBytes);
    }
    try {
      const bytes = await readBody(res, maxBytes, url);
      return { bytes, mediaType, charset, url: url.href };
    } catch (err) {
      throw deadline.aborted ? timedOut() : err;
    }
  }
}

function checkUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FerryError('fetch/bad-url', `"${text.slice(0, 200)}" is not a web address; give one such as https://example.org/paper.pdf.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FerryError('fetch/scheme-not-allowed', `${url.protocol.replace(/:$/, '')}: addresses cannot be fetched; only http and https are.`);
  }
  if (url.username || url.password) {
    throw new FerryError('fetch/bad-url', 'The address carries a user name or password; the relay fetches only public pages, without credentials.');
  }
  url.hash = '';
  return url;
}

/** The one address to connect to: the host's, every one of them allowed by the policy. */
async function checkedAddress(url: URL, opts: UrlFetcherOptions): Promise<{ address: string; family: 4 | 6 }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = opts.resolve ? await opts.resolve(host) : (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (cause) {
      throw new FerryError('fetch/unresolvable', `The name ${host} does not resolve (${cause instanceof Error ? cause.message : String(cause)}); check the address.`, { cause });
    }
    if (addresses.length === 0) throw new FerryError('fetch/unresolvable', `The name ${host} has no address; check the address.`);
  }
  for (const address of addresses) {
    const refusal = opts.policy.refusal(address);
    if (refusal) {
      const which = address === host ? `${host} is` : `${host} resolves to ${address},`;
      throw new FerryError('fetch/address-not-allowed', `${which} ${refusal}: the relay fetches only public addresses. Download the file and add it from this device instead.`, { details: { host, address } });
    }
  }
  const address = addresses[0]!;
  return { address, family: isIP(address) === 6 ? 6 : 4 };
}

/** One GET to `url`, connecting only to `pinned` (never a new DNS answer), on a fresh connection. */
function get(url: URL, pinned: { address: string; family: 4 | 6 }, signal: AbortSignal, userAgent: string): Promise<http.IncomingMessage> {
  const lookup: LookupFunction = (_host, options, callback) => {
    if (options.all) (callback as (err: null, addresses: { address: string; family: number }[]) => void)(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
  const request = url.protocol === 'https:' ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'GET',
      agent: false,
      lookup,
      signal,
      headers: { accept: URL_FETCH_TYPES.join(', '), 'accept-encoding': 'gzip, deflate, br', 'user-agent': userAgent },
    }, resolve);
    req.on('error', (cause) => reject(new FerryError('fetch/unreachable', `Cannot fetch ${url.href} (${cause.message}); check the address, or try again later.`, { cause })));
    req.end();
  });
}

async function readBody(res: http.IncomingMessage, maxBytes: number, url: URL): Promise<Uint8Array> {
  const encoding = String(res.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  const decoder = encoding === 'gzip' || encoding === 'x-gzip' ? zlib.createGunzip() : encoding === 'deflate' ? zlib.createInflate() : encoding === 'br' ? zlib.createBrotliDecompress() : undefined;
  if (!decoder && encoding !== 'identity') {
    res.destroy();
    throw new FerryError('fetch/type-not-allowed', `${url.href} came encoded as "${encoding}", which the relay does not decode.`);
  }
  const body: Readable = decoder ? pipeline(res, decoder, () => undefined) : res;
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > maxBytes) throw tooLarge(url, maxBytes);
      chunks.push(chunk);
    }
  } catch (err) {
    res.destroy();
    if (err instanceof FerryError) throw err;
    throw new FerryError('fetch/unreachable', `The body of ${url.href} broke off or did not decode (${err instanceof Error ? err.message : String(err)}); try again.`, { cause: err });
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

function tooLarge(url: URL, maxBytes: number): FerryError {
  return new FerryError('fetch/too-large', `${url.href} is larger than ${Math.round(maxBytes / 1024 / 1024)} MB, the most the relay fetches; download it and add the file from this device.`, { details: { maxBytes } });
}
