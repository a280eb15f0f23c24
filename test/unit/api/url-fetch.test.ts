/**
 * The relay's URL fetcher and its route (api/url-fetch.ts) against HTTP servers started here: only public addresses
 * are fetched — checked after DNS resolution and again at every redirect, with the connection pinned to the address
 * checked — unless a range is allowed explicitly; the media type, the size (declared, streamed, and decompressed),
 * the redirect count and the deadline are held to their limits; each refusal has its own code and HTTP status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../../server/config.ts';
import { addressPolicy, parseAllowed } from '../../../server/web/address-policy.ts';
import { fetchUrl, type UrlFetcherOptions } from '../../../server/web/url-fetcher.ts';
import type { FerryError } from '../../../src/core/errors.ts';
import { refusal as refusalOf } from '../../support/refusal.ts';
import { RelayHttp } from '../../../src/core/protocol/index.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './relay-harness.ts';

const PAGE = '<!doctype html><title>Harbour notes</title><p>Cranes lift containers.</p>';

/** What the test site was asked for, by path: a refused fetch must never reach it. */
const hits: string[] = [];
let site: Server;
let base: string;
let port: number;

function routes(req: IncomingMessage, res: ServerResponse): void {
  hits.push(req.url ?? '');
  const send = (status: number, headers: Record<string, string | number>, body?: Buffer | string): void => void res.writeHead(status, headers).end(body);
  switch (req.url) {
    case '/page.html': return send(200, { 'content-type': 'text/html; charset=utf-8' }, PAGE);
    case '/latin1.txt': return send(200, { 'content-type': 'text/plain; charset=ISO-8859-1' }, Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    case '/paper.pdf': return send(200, { 'content-type': 'application/pdf' }, '%PDF-1.4 bytes as they are');
    case '/photo.png': return send(200, { 'content-type': 'image/png' }, Buffer.from([0x89, 0x50]));
    case '/hop': return send(302, { location: '/page.html' });
    case '/loop': return send(301, { location: '/loop' });
    case '/to-loopback': return send(302, { location: `http://127.0.0.2:${port}/page.html` });
    case '/to-metadata': return send(307, { location: 'http://169.254.169.254/latest/meta-data/' });
    case '/to-file': return send(302, { location: 'file:///etc/passwd' });
    case '/declared-big': return send(200, { 'content-type': 'text/plain', 'content-length': 5000 }, 'x'.repeat(5000));
    case '/streamed-big': {
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < 10; i++) res.write('y'.repeat(1000));
      return void res.end();
    }
    case '/gzip': return send(200, { 'content-type': 'text/html', 'content-encoding': 'gzip' }, gzipSync(PAGE));
    case '/bomb': return send(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }, gzipSync(Buffer.alloc(1 << 20)));
    case '/gone': return send(404, { 'content-type': 'text/plain' }, 'no');
    case '/silent': return; // never answers: the deadline ends it
    default: return send(500, {}, 'unexpected');
  }
}

beforeAll(async () => {
  site = createServer(routes);
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  port = (site.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});

/** Allows the test site (127.0.0.1) only; names resolve through `names` first, the system otherwise. */
function options(extra: Partial<UrlFetcherOptions> = {}, names: Record<string, string[]> = {}): UrlFetcherOptions {
  return { policy: addressPolicy(['127.0.0.1']), resolve: async (host) => names[host] ?? ['203.0.113.1'], ...extra };
}

const refusal = (p: Promise<unknown>): Promise<FerryError> => refusalOf(() => p);

describe('which addresses may be fetched', () => {
  it('only public unicast addresses, unless a range is allowed', () => {
    const policy = addressPolicy();
    for (const ok of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111']) expect(policy.refusal(ok), ok).toBeUndefined();
    const refused: [string, RegExp][] = [
      ['127.0.0.1', /loopback/], ['127.8.9.10', /loopback/], ['::1', /loopback/], ['::ffff:127.0.0.1', /loopback/],
      ['10.1.2.3', /private/], ['172.16.0.1', /private/], ['192.168.1.20', /private/], ['fd00:ec2::254', /unique local/],
      ['169.254.169.254', /link-local/], ['fe80::1', /link-local/], ['100.100.100.200', /carrier-grade/],
      ['0.0.0.0', /unspecified/], ['::', /unspecified/], ['255.255.255.255', /broadcast/], ['224.0.0.1', /multicast/],
      ['192.0.2.1', /special-purpose/], ['64:ff9b::a00:1', /special-purpose/], ['2002:a00:1::', /special-purpose/], ['not-an-ip', /not an IP/],
    ];
    for (const [address, why] of refused) expect(policy.refusal(address), address).toMatch(why);
    const lan = addressPolicy(['192.168.1.0/24', '::1']);
    expect(lan.refusal('192.168.1.20')).toBeUndefined();
    expect(lan.refusal('::1')).toBeUndefined();
    expect(lan.refusal('192.168.2.1')).toMatch(/private/);
    // A relay that listens on loopback only serves this machine's browser: loopback targets, nothing more.
    const local = addressPolicy([], { localRelay: true });
    for (const ok of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) expect(local.refusal(ok), ok).toBeUndefined();
    for (const no of ['10.1.2.3', '192.168.1.20', '169.254.169.254', 'fe80::1']) expect(local.refusal(no), no).toBeDefined();
    expect(() => parseAllowed('192.168.1.0/99')).toThrow(expect.objectContaining({ code: 'config/bad-fetch-allow' }));
    expect(() => parseAllowed('example.org')).toThrow(expect.objectContaining({ code: 'config/bad-fetch-allow' }));
  });

  it('is the relay\'s --fetch-allow (FERRY_FETCH_ALLOW), none by default', () => {
    expect(resolveConfig([]).fetchAllow).toEqual([]);
    expect(resolveConfig(['--fetch-allow', '127.0.0.1, 10.0.0.0/8']).fetchAllow).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(resolveConfig([], { FERRY_FETCH_ALLOW: '::1' }).fetchAllow).toEqual(['::1']);
    expect(() => resolveConfig(['--fetch-allow', 'localhost'])).toThrow(expect.objectContaining({ code: 'config/bad-fetch-allow' }));
  });
});

describe('the URL fetcher', () => {
  it('fetches an allowed address: bytes, media type, charset, and the final address after a redirect', async () => {
    const page = await fetchUrl(`${base}/hop`, options());
    expect(new TextDecoder().decode(page.bytes)).toBe(PAGE);
    expect(page).toMatchObject({ mediaType: 'text/html', charset: 'utf-8', url: `${base}/page.html` });
    expect(await fetchUrl(`${base}/latin1.txt`, options())).toMatchObject({ mediaType: 'text/plain', charset: 'iso-8859-1' });
    expect(new TextDecoder().decode((await fetchUrl(`${base}/gzip`, options())).bytes)).toBe(PAGE);
    expect((await fetchUrl(`${base}/paper.pdf`, options())).mediaType).toBe('application/pdf');
  });

  it('checks every address a name resolves to, and connects to the address it checked', async () => {
    // "harbour.test" exists only in this resolver: the request reaches the site because the connection is pinned.
    const page = await fetchUrl(`http://harbour.test:${port}/page.html`, options({}, { 'harbour.test': ['127.0.0.1'] }));
    expect(page.url).toBe(`http://harbour.test:${port}/page.html`);
    const before = hits.length;
    const metadata = await refusal(fetchUrl('http://rebind.test/latest/meta-data/', options({}, { 'rebind.test': ['169.254.169.254'] })));
    expect(metadata.code).toBe('fetch/address-not-allowed');
    expect(metadata.message).toMatch(/rebind\.test resolves to 169\.254\.169\.254, a link-local address/);
    const mixed = await refusal(fetchUrl(`http://mixed.test:${port}/page.html`, options({}, { 'mixed.test': ['127.0.0.1', '10.0.0.7'] })));
    expect(mixed.details).toEqual({ host: 'mixed.test', address: '10.0.0.7' });
    // The system resolver: "localhost" is loopback, refused when nothing is allowed.
    expect((await refusal(fetchUrl(`http://localhost:${port}/page.html`, { policy: addressPolicy() }))).code).toBe('fetch/address-not-allowed');
    expect((await refusal(fetchUrl(`http://nowhere.invalid/`, { policy: addressPolicy() }))).code).toBe('fetch/unresolvable');
    expect(hits.length).toBe(before);
  });

  it('refuses private, loopback, link-local and metadata targets by default, written any way, and never contacts them', async () => {
    const before = hits.length;
    const none = { policy: addressPolicy() };
    for (const url of [`${base}/page.html`, `http://[::1]:${port}/`, `http://[::ffff:127.0.0.1]:${port}/`, `http://0x7f000001:${port}/`, `http://2130706433:${port}/`,
      'http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://100.100.100.200/', 'http://192.168.0.1/', 'http://0.0.0.0/']) {
      expect((await refusal(fetchUrl(url, none))).code, url).toBe('fetch/address-not-allowed');
    }
    expect(hits.length).toBe(before);
  });

  it('checks every redirect like the first address: to loopback, to the metadata service, to another scheme, in a loop', async () => {
    const to = async (path: string): Promise<string> => (await refusal(fetchUrl(`${base}${path}`, options()))).code;
    expect(await to('/to-loopback')).toBe('fetch/address-not-allowed');
    expect(await to('/to-metadata')).toBe('fetch/address-not-allowed');
    expect(await to('/to-file')).toBe('fetch/scheme-not-allowed');
    expect(await to('/loop')).toBe('fetch/too-many-redirects');
    expect(hits.filter((h) => h === '/loop')).toHaveLength(6);
  });

  it('refuses other schemes, credentials and what is not an address', async () => {
    for (const [url, code] of [['file:///etc/passwd', 'fetch/scheme-not-allowed'], ['ftp://example.org/x', 'fetch/scheme-not-allowed'], ['gopher://example.org/', 'fetch/scheme-not-allowed'],
      [`http://user:secret@127.0.0.1:${port}/page.html`, 'fetch/bad-url'], ['not a url', 'fetch/bad-url']] as const) {
      expect((await refusal(fetchUrl(url, options()))).code, url).toBe(code);
    }
  });

  it('holds the media type, the size (declared, streamed, decompressed), the status and the deadline to their limits', async () => {
    const small = options({ maxBytes: 4000 });
    const code = async (path: string, opts = small): Promise<string> => (await refusal(fetchUrl(`${base}${path}`, opts))).code;
    expect(await code('/photo.png')).toBe('fetch/type-not-allowed');
    expect(await code('/declared-big')).toBe('fetch/too-large');
    expect(await code('/streamed-big')).toBe('fetch/too-large');
    expect(await code('/bomb')).toBe('fetch/too-large');
    expect(await code('/gone')).toBe('fetch/upstream-status');
    expect(await code('/silent', options({ timeoutMs: 300 }))).toBe('fetch/timeout');
    // Nothing listens on this port of an allowed address.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const dead = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await refusal(fetchUrl(`http://127.0.0.1:${dead}/`, options()))).code).toBe('fetch/unreachable');
  });
});

describe('POST /api/v2/url-fetch', () => {
  const dirs: Awaited<ReturnType<typeof makeTempDirs>>[] = [];
  const relays: TestRelay[] = [];
  async function relay(fetchAllow: string[], host = '127.0.0.1'): Promise<RelayHttp> {
    const d = await makeTempDirs();
    dirs.push(d);
    const r = await startTestRelay({ staticDir: d.staticDir, dataDir: d.dataDir, fetchAllow, host });
    relays.push(r);
    return new RelayHttp({ baseUrl: r.url });
  }
  afterAll(async () => {
    for (const r of relays) await r.close();
    for (const d of dirs) await d.cleanup();
  });

  it('answers with the bytes, their type and the final address; refusals are typed errors with their HTTP status', async () => {
    // Listening on loopback only: loopback targets are allowed without --fetch-allow.
    const allowed = await relay([]);
    const page = await allowed.fetchUrl(`${base}/hop`);
    expect(new TextDecoder().decode(page.bytes)).toBe(PAGE);
    expect(page).toMatchObject({ mediaType: 'text/html', charset: 'utf-8', url: `${base}/page.html` });
    const typed = await refusal(allowed.fetchUrl(`${base}/photo.png`));
    expect([typed.code, typed.details?.status]).toEqual(['fetch/type-not-allowed', 415]);
    const hop = await refusal(allowed.fetchUrl(`${base}/to-metadata`));
    expect([hop.code, hop.details?.status]).toEqual(['fetch/address-not-allowed', 403]);

    // Listening on every interface (other devices may ask): loopback is refused unless allowed.
    const strict = await relay([], '0.0.0.0');
    const loopback = await refusal(strict.fetchUrl(`${base}/page.html`));
    expect([loopback.code, loopback.details?.status]).toEqual(['fetch/address-not-allowed', 403]);
    expect(loopback.message).toMatch(/127\.0\.0\.1 is a loopback address: the relay fetches only public addresses/);
    const bad = await refusal(strict.fetchUrl('javascript:alert(1)'));
    expect([bad.code, bad.details?.status]).toEqual(['fetch/scheme-not-allowed', 400]);
  });
});
