import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { resolveConfig, defaultConfig, type RelayConfig } from '../../server/config.ts';
import { buildRelay } from '../../server/app.ts';
import { isFerryError } from '../../src/core/errors.ts';

describe('relay configuration', () => {
  test('embedded defaults, then environment, then flags', () => {
    expect(resolveConfig([], {})).toMatchObject({ host: 'localhost', port: 8787, logLevel: 'info' });
    expect(resolveConfig([], { FERRY_PORT: '9000', FERRY_HOST: '0.0.0.0', FERRY_DATA: '/tmp/x' })).toMatchObject({ port: 9000, host: '0.0.0.0', dataDir: '/tmp/x' });
    expect(resolveConfig(['--port', '9100', '--data', 'rel'], { FERRY_PORT: '9000' })).toMatchObject({ port: 9100, dataDir: path.resolve('rel') });
    expect(resolveConfig([], {}).dataDir).toBe(defaultConfig.dataDir);
  });

  test('bad values are refused with what to do', () => {
    for (const bad of ['-1', '65536', 'http', '1.5']) {
      expect(() => resolveConfig([`--port=${bad}`], {})).toThrow(/--port or FERRY_PORT/);
      expect(() => resolveConfig([], { FERRY_PORT: bad })).toThrow(/--port or FERRY_PORT/);
    }
    expect(() => resolveConfig(['--log-level', 'loud'], {})).toThrow(/Log level "loud" is unknown/);
    expect(() => resolveConfig(['--nope'], {})).toThrow(/Unknown option/);
    expect(() => resolveConfig(['--rate-limit=-5'], {})).toThrow(/--rate-limit or FERRY_RATE_LIMIT/);
    expect(() => resolveConfig([], { FERRY_MAX_OBJECT_BYTES: '12kb' })).toThrow(/--max-object-bytes/);
    expect(() => resolveConfig(['--allow-origin', 'https://a.example/path'], {})).toThrow(/is not an origin/);
    expect(() => resolveConfig(['--allow-origin', 'ftp://a.example'], {})).toThrow(/is not an origin/);
  });

  test('limits and the CORS policy: flags, environment, defaults', () => {
    expect(resolveConfig([], {})).toMatchObject({ rateLimitPerMinute: 1200, allowOrigins: [], maxObjectBytes: 16 * 1024 * 1024 });
    expect(resolveConfig(['--rate-limit', '0', '--max-object-bytes', '65536'], {})).toMatchObject({ rateLimitPerMinute: 0, maxObjectBytes: 65536 });
    expect(resolveConfig([], { FERRY_ALLOW_ORIGINS: 'https://a.example, http://localhost:5173' }).allowOrigins).toEqual(['https://a.example', 'http://localhost:5173']);
    expect(resolveConfig(['--allow-origin', '*'], { FERRY_ALLOW_ORIGINS: 'https://a.example' }).allowOrigins).toEqual(['*']);
  });

  test("the embedded worker's price: none by default, from the flag or the environment, bad ones refused", () => {
    expect(resolveConfig([], {}).workerPrice).toBeUndefined();
    expect(resolveConfig([], { FERRY_WORKER_PRICE: '0.0002' }).workerPrice).toEqual({ promptPer1k: 0.0002, outputPer1k: 0.0002 });
    expect(resolveConfig(['--price', '0.0001,0.0004'], { FERRY_WORKER_PRICE: '0.0002' }).workerPrice).toEqual({ promptPer1k: 0.0001, outputPer1k: 0.0004 });
    expect(() => resolveConfig(['--price', 'free'], {})).toThrow(/"free" is not a price/);
  });
});

describe('relay HTTP', () => {
  let dir: string;
  let app: FastifyInstance;
  let config: RelayConfig;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-relay-'));
    const staticDir = path.join(dir, 'dist');
    await mkdir(path.join(staticDir, 'assets'), { recursive: true });
    await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>shell</title>');
    await writeFile(path.join(staticDir, 'sw.js'), 'self.addEventListener("fetch", () => {})');
    await writeFile(path.join(staticDir, 'assets', 'app-abc123.js'), 'export {}');
    config = { ...defaultConfig, port: 0, logLevel: 'silent', staticDir, dataDir: path.join(dir, 'data') };
    app = await buildRelay(config);
  });

  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('/healthz answers with the version, cross-origin isolated like every response', async () => {
    const res = await app.inject({ url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', version: expect.any(String) });
    expect(res.headers['cross-origin-opener-policy']).toBe('same-origin');
    expect(res.headers['cross-origin-embedder-policy']).toBe('require-corp');
  });

  test('hashed assets are immutable; the shell and service worker are revalidated', async () => {
    expect((await app.inject({ url: '/assets/app-abc123.js' })).headers['cache-control']).toContain('immutable');
    expect((await app.inject({ url: '/sw.js' })).headers['cache-control']).toBe('no-cache');
    expect((await app.inject({ url: '/' })).headers['cache-control']).toBe('no-cache');
  });

  test('page navigations to app routes get the shell; API misses get a JSON error', async () => {
    // A share link is opened by a browser (Accept: text/html) but also by link previews that accept anything.
    for (const accept of ['text/html', '*/*']) {
      const share = await app.inject({ url: `/s/${'ab'.repeat(20)}`, headers: { accept } });
      expect(share.statusCode).toBe(200);
      expect(share.body).toContain('<title>shell</title>');
    }
    const page = await app.inject({ url: '/s/some-share-id', headers: { accept: 'text/html' } });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('<title>shell</title>');
    const api = await app.inject({ url: '/api/nothing-here', headers: { accept: 'text/html' } });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toMatchObject({ error: { code: 'http/not-found' } });
  });

  test('creates its data folder, and refuses an unbuilt PWA or an unwritable folder with the fix', async () => {
    await expect(buildRelay({ ...config, staticDir: path.join(dir, 'missing') })).rejects.toSatisfy(
      (e) => isFerryError(e, 'config/pwa-not-built') && /npm run build/.test((e as Error).message),
    );
    const blocker = path.join(dir, 'a-file');
    await writeFile(blocker, 'not a folder');
    await expect(buildRelay({ ...config, dataDir: path.join(blocker, 'data') })).rejects.toSatisfy((e) => isFerryError(e, 'config/data-dir'));
  });
});
