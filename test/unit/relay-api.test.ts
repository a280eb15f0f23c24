/**
 * The relay API refuses bad input with 4xx JSON errors `{ error: { code, message } }` and keeps serving:
 * malformed JSON, wrong schemas, oversized bodies, missing or lying Content-Length, plaintext uploads, unknown
 * ids, missing or wrong write tokens, stale compare-and-swap. Plus CORS, foreign origins, rate limits, /metrics.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import net from 'node:net';
import * as v from 'valibot';
import { ErrorBodySchema, FRAMES_CONTENT_TYPE, RelayHttp, encodeFrames, publishSession } from '../../src/core/protocol/index.ts';
import { deriveSessionKeys, encodeContainer, generateSessionKey, sealObject } from '../../src/core/snapshot/index.ts';
import { createMemoryStore, objectId } from '../../src/core/store/index.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

const hex = (n: number, c = 'a'): string => c.repeat(n);
const body = (b: Uint8Array): BodyInit => b as Uint8Array<ArrayBuffer>;

async function sealed(text: string): Promise<{ id: string; bytes: Uint8Array }> {
  const keys = await deriveSessionKeys(generateSessionKey());
  const bytes = new TextEncoder().encode(text);
  return sealObject(keys, { id: await objectId(bytes), bytes });
}

/** Sends raw bytes over a socket (for requests fetch refuses to make) and returns the status line and body. */
function raw(url: string, request: string, body: Uint8Array = new Uint8Array()): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.write(request);
      socket.end(body);
    });
    let data = '';
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
  });
}

describe('the relay API under bad input', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let published: Awaited<ReturnType<typeof publishSession>>;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, maxObjectBytes: 64 * 1024, allowOrigins: ['https://friend.example'] });
    const store = createMemoryStore();
    const { session } = await writeSession(store, 2);
    published = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  /** Sends a request; asserts a 4xx JSON error with the given status and code. */
  async function expectError(path: string, init: RequestInit, status: number, code: string): Promise<void> {
    const res = await fetch(relay.url + path, init);
    const text = await res.text();
    expect(res.status, `${init.method ?? 'GET'} ${path}: ${text}`).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = v.parse(ErrorBodySchema, JSON.parse(text));
    expect(body.error.code).toBe(code);
    expect(body.error.message.length).toBeGreaterThan(10);
  }

  const json = (method: string, body: string, headers: Record<string, string> = {}): RequestInit => ({ method, body, headers: { 'content-type': 'application/json', ...headers } });

  test('malformed JSON', async () => {
    await expectError('/api/v2/objects/missing', json('POST', '{"ids": ['), 400, 'http/malformed-json');
    await expectError('/api/v2/snapshots', json('POST', 'not json'), 400, 'http/malformed-json');
    await expectError('/api/v2/snapshots', json('POST', ''), 400, 'http/malformed-json');
  });

  test('wrong schema', async () => {
    for (const body of [{}, { ids: 'x' }, { ids: ['abc'] }, { ids: [hex(64, 'A')] }, { ids: [], extra: 1 }, { ids: Array(1025).fill(hex(64)) }]) {
      await expectError('/api/v2/objects/missing', json('POST', JSON.stringify(body)), 400, 'protocol/bad-request');
    }
    await expectError('/api/v2/objects/missing', { method: 'POST', body: 'ids', headers: { 'content-type': 'text/plain' } }, 400, 'protocol/bad-request');
    await expectError('/api/v2/snapshots', json('POST', JSON.stringify({ manifest: 42 })), 400, 'protocol/bad-request');
    await expectError('/api/v2/snapshots', json('POST', JSON.stringify([])), 400, 'protocol/bad-request');
  });

  test('oversized bodies, and Content-Length missing, too large or lying', async () => {
    await expectError('/api/v2/objects/missing', json('POST', JSON.stringify({ ids: [], pad: 'x'.repeat(200_000) })), 413, 'http/body-too-large');
    const big = new Uint8Array(70 * 1024);
    await expectError(`/api/v2/objects/${hex(64)}`, { method: 'PUT', body: big, headers: { 'content-type': 'application/octet-stream' } }, 413, 'relay/too-large');
    // A stream body goes out chunked, without Content-Length.
    const stream = new ReadableStream({ start: (c) => (c.enqueue(new Uint8Array(10)), c.close()) });
    await expectError(`/api/v2/objects/${hex(64)}`, { method: 'PUT', body: stream, headers: { 'content-type': 'application/octet-stream' }, duplex: 'half' } as RequestInit, 411, 'relay/length-required');
    // A Content-Length longer than the body that follows: the relay must not store a truncated object.
    const { id, bytes } = await sealed('short');
    const res = await raw(relay.url, `PUT /api/v2/objects/${id} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${bytes.length + 50}\r\nConnection: close\r\n\r\n`, bytes);
    expect([400, 408, 0]).toContain(res.status);
    expect(await new RelayHttp({ baseUrl: relay.url }).missing([id])).toEqual([id]);
    // A body that claims a payload over the limit inside its own header.
    const keys = await deriveSessionKeys(generateSessionKey());
    const claim = await encodeContainer(new Uint8Array(100 * 1024), { kind: 'object', keys, compress: true });
    await expectError(`/api/v2/objects/${hex(64)}`, { method: 'PUT', body: body(claim), headers: { 'content-type': 'application/octet-stream' } }, 413, 'relay/too-large');
  });

  test('uploads that are not sealed objects, or sent as the wrong type, are refused and not stored', async () => {
    const plainObject = await encodeContainer(new TextEncoder().encode('plaintext'), { kind: 'object' });
    for (const bytes of [new TextEncoder().encode('hello'), plainObject, new Uint8Array(0)]) {
      await expectError(`/api/v2/objects/${hex(64, 'b')}`, { method: 'PUT', body: body(bytes), headers: { 'content-type': 'application/octet-stream' } }, 400, 'relay/not-sealed');
    }
    const { bytes } = await sealed('ok');
    await expectError(`/api/v2/objects/${hex(64, 'b')}`, { method: 'PUT', body: body(bytes), headers: { 'content-type': 'image/png' } }, 415, 'http/unsupported-media-type');
    await expectError(`/api/v2/objects/${hex(64, 'b')}`, json('PUT', '{}'), 415, 'http/unsupported-media-type');
    expect(await new RelayHttp({ baseUrl: relay.url }).missing([hex(64, 'b')])).toEqual([hex(64, 'b')]);
  });

  test('batches: truncated or oversized frames and plaintext objects are refused whole; fetch returns only what exists', async () => {
    const frames = { 'content-type': FRAMES_CONTENT_TYPE };
    const a = await sealed('first');
    const good = encodeFrames([a]);
    await expectError('/api/v2/objects/batch', { method: 'POST', body: body(good.subarray(0, good.length - 3)), headers: frames }, 400, 'protocol/bad-frames');
    await expectError('/api/v2/objects/batch', { method: 'POST', body: body(good.subarray(0, 20)), headers: frames }, 400, 'protocol/bad-frames');
    const lying = good.slice();
    new DataView(lying.buffer).setUint32(32, 0xffffffff);
    await expectError('/api/v2/objects/batch', { method: 'POST', body: body(lying), headers: frames }, 413, 'relay/too-large');
    const plain = { id: hex(64, '1'), bytes: await encodeContainer(new Uint8Array(8), { kind: 'object' }) };
    await expectError('/api/v2/objects/batch', { method: 'POST', body: body(encodeFrames([a, plain])), headers: frames }, 400, 'relay/not-sealed');
    const http = new RelayHttp({ baseUrl: relay.url });
    expect(await http.missing([a.id, plain.id])).toEqual([a.id, plain.id]);
    await expectError('/api/v2/objects/fetch', json('POST', JSON.stringify({ ids: ['nope'] })), 400, 'protocol/bad-request');
    expect(await http.putObjects([a, a])).toEqual({ received: 2, created: 1, bytes: 2 * a.bytes.length });
    const got = await http.getObjects([hex(64, '2'), a.id]);
    expect([...got.keys()]).toEqual([a.id]);
    expect(got.get(a.id)).toEqual(a.bytes);
  });

  test('bad and unknown ids', async () => {
    for (const bad of ['xyz', hex(63), hex(65), hex(64, 'G'), '..%2F..%2Fetc%2Fpasswd']) {
      await expectError(`/api/v2/objects/${bad}`, {}, 400, 'protocol/bad-request');
      await expectError(`/api/v2/snapshots/${bad}`, {}, 400, 'protocol/bad-request');
    }
    await expectError(`/api/v2/objects/${hex(64, 'c')}`, {}, 404, 'relay/unknown-object');
    await expectError(`/api/v2/snapshots/${hex(40, 'c')}`, {}, 404, 'relay/unknown-snapshot');
    await expectError('/api/v2/snapshots', json('POST', JSON.stringify({ manifest: hex(64, 'd') })), 409, 'relay/missing-object');
    await expectError('/api/v2/nothing', {}, 404, 'http/not-found');
  });

  test('snapshot updates need the right write token and the current manifest', async () => {
    const id = published.snapshot.id;
    const manifest = published.snapshot.manifest;
    const body = JSON.stringify({ manifest, expect: manifest });
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', body), 401, 'relay/token-required');
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', body, { authorization: `Basic ${published.writeToken}` }), 401, 'relay/token-required');
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', body, { authorization: 'Bearer short' }), 400, 'protocol/bad-request');
    const wrong = published.writeToken.startsWith('A') ? `B${published.writeToken.slice(1)}` : `A${published.writeToken.slice(1)}`;
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', body, { authorization: `Bearer ${wrong}` }), 403, 'relay/bad-token');
    await expectError(`/api/v2/snapshots/${hex(40, 'e')}`, json('PUT', body, { authorization: `Bearer ${published.writeToken}` }), 404, 'relay/unknown-snapshot');
    const auth = { authorization: `Bearer ${published.writeToken}` };
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', JSON.stringify({ manifest, expect: hex(64, 'f') }), auth), 409, 'store/ref-conflict');
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', JSON.stringify({ manifest: hex(64, 'f'), expect: manifest }), auth), 409, 'relay/missing-object');
    await expectError(`/api/v2/snapshots/${id}`, json('PUT', JSON.stringify({ manifest }), auth), 400, 'protocol/bad-request');
    // None of that moved it.
    expect(await new RelayHttp({ baseUrl: relay.url }).getSnapshot(id)).toEqual(published.snapshot);
  });

  test('CORS: allowed origins may read; other origins are refused; the relay stays same-origin by default', async () => {
    const pre = await fetch(`${relay.url}/api/v2/objects/missing`, {
      method: 'OPTIONS',
      headers: { origin: 'https://friend.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(pre.status).toBeLessThan(300);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://friend.example');
    const friend = await fetch(`${relay.url}/api/v2/snapshots/${published.snapshot.id}`, { headers: { origin: 'https://friend.example' } });
    expect(friend.status).toBe(200);
    expect(friend.headers.get('access-control-allow-origin')).toBe('https://friend.example');
    await expectError(`/api/v2/snapshots/${published.snapshot.id}`, { headers: { origin: 'https://evil.example' } }, 403, 'relay/origin-not-allowed');
    const evilPre = await fetch(`${relay.url}/api/v2/objects/missing`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(evilPre.headers.get('access-control-allow-origin')).toBeNull();
    // A page served by the relay itself sends its own origin.
    const own = await fetch(`${relay.url}/api/v2/snapshots/${published.snapshot.id}`, { headers: { origin: relay.url } });
    expect(own.status).toBe(200);
  });

  test('after all of that the relay still serves: health, reads and a new publish', async () => {
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
    const http = new RelayHttp({ baseUrl: relay.url });
    expect((await http.getSnapshot(published.snapshot.id)).id).toBe(published.snapshot.id);
    const store = createMemoryStore();
    const { session } = await writeSession(store, 1);
    expect((await publishSession(store, session.id, http)).snapshot.version).toBe(1);
  });

  test('/metrics exposes request and relay counters in the Prometheus format', async () => {
    const res = await fetch(`${relay.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    // Uploads (publishes carry their objects) are counted by route and status.
    expect(text).toMatch(/ferry_http_requests_total\{method="(PUT|POST)",route="\/api\/v2\/[^"]+",status="20[01]"\} [1-9]/);
    expect(text).toMatch(/ferry_relay_objects_stored_total \d+/);
    expect(text).toMatch(/ferry_relay_snapshot_writes_total\{op="publish"\} [1-9]/);
    expect(text).toContain('ferry_process_cpu_user_seconds_total');
    // Ids never become labels.
    expect(text).not.toContain(published.snapshot.id);
  });
});

describe('rate limits', () => {
  test('a client over its budget gets 429 JSON, and publishing has a smaller budget', async () => {
    const dirs = await makeTempDirs();
    const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, rateLimitPerMinute: 20 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        statuses.push((await fetch(`${relay.url}/api/v2/snapshots`, json2({ manifest: hex(64) }))).status);
      }
      // Two publishes a minute (a tenth of 20): the third is refused before it is even validated.
      expect(statuses).toEqual([409, 409, 429, 429]);
      let last: Response | undefined;
      for (let i = 0; i < 25; i++) last = await fetch(`${relay.url}/api/v2/snapshots/${hex(40)}`);
      expect(last!.status).toBe(429);
      expect(last!.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(v.parse(ErrorBodySchema, await last!.json()).error.code).toBe('http/rate-limited');
    } finally {
      await relay.close();
      await dirs.cleanup();
    }
  });
});

function json2(body: unknown): RequestInit {
  return { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
}
