import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const shots = path.join(root, 'test-results', 'e2e');

describe('the PWA served by the relay', () => {
  let relay: RelayProcess;
  let browser: FreshBrowser;
  let page: Page;
  let dataDir: string;

  beforeAll(async () => {
    if (!existsSync(path.join(root, 'dist', 'index.html'))) {
      throw new Error('dist/ has no build: run `npm run build` first (`npm test` builds before the end-to-end suite).');
    }
    await mkdir(shots, { recursive: true });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-e2e-data-'));
    relay = await startRelayProcess(['--data', dataDir]);
    browser = await launchFreshChromium();
    page = await browser.context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('serves /healthz on the same port', async () => {
    const res = await fetch(`${relay.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
  });

  test('loads, renders its root, is cross-origin isolated and installable', async () => {
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(relay.url);
    await expect.poll(() => page.getByTestId('app-root').isVisible()).toBe(true);
    await expect(page.getByRole('heading', { name: 'Ferry' }).count()).resolves.toBe(1);
    // wllama's threads need SharedArrayBuffer, which needs COOP + COEP from the relay.
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);

    const manifestHref = await page.locator('link[rel="manifest"]').getAttribute('href');
    expect(manifestHref).toBeTruthy();
    const manifest = (await (await fetch(new URL(manifestHref!, relay.url))).json()) as { display: string; icons: { sizes: string; src: string }[] };
    expect(manifest.display).toBe('standalone');
    for (const size of ['192x192', '512x512']) {
      const icon = manifest.icons.find((i) => i.sizes === size);
      expect(icon, `manifest icon ${size}`).toBeDefined();
      expect((await fetch(new URL(icon!.src, relay.url))).headers.get('content-type')).toBe('image/png');
    }
    expect(pageErrors).toEqual([]);
  });

  test('registers its service worker, then reloads offline from it', async () => {
    const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
    expect(scope).toBe(`${relay.url}/`);
    await expect.poll(() => page.getByTestId('offline-ready').isVisible(), { timeout: 30_000 }).toBe(true);
    await page.screenshot({ path: path.join(shots, 'pwa-online.png') });
    // The app shell is precached (workers and engine wasm included); the GPU engines (web-llm ≈6 MB a copy — the
    // page's and the agent worker's — and wllama 3's WebGPU build ≈9 MB, for WebGPU devices only) are not: they are
    // fetched and cached when first used.
    const precached = await page.evaluate(async () => {
      const entries: { path: string; bytes: number; webLlm: boolean; webGpuWllama: boolean }[] = [];
      for (const name of await caches.keys()) {
        const cache = await caches.open(name);
        for (const request of await cache.keys()) {
          const body = (await (await cache.match(request))?.text()) ?? '';
          // Each engine whatever its file is called: web-llm's catalog names its model libraries; wllama 3's JS and
          // wasm carry emscripten's WebGPU bindings (emwgpu…), which wllama 2's CPU build lacks.
          entries.push({ path: new URL(request.url).pathname, bytes: body.length, webLlm: body.includes('binary-mlc-llm-libs'), webGpuWllama: body.includes('emwgpu') });
        }
      }
      return entries;
    });
    expect(precached.filter((e) => /\/assets\/(agent|node|tool)\.worker-[^/]+\.js$/.test(e.path))).toHaveLength(3);
    expect(precached.some((e) => e.path.endsWith('.wasm'))).toBe(true);
    expect(precached.filter((e) => e.webLlm || e.webGpuWllama).map((e) => e.path)).toEqual([]);
    console.info(`precached: ${precached.length} files, ${(precached.reduce((n, e) => n + e.bytes, 0) / 2 ** 20).toFixed(1)} MiB`);

    // Offline for real: the relay is gone and the browser has no network.
    await relay.stop();
    await browser.context.setOffline(true);
    await page.reload();
    await expect.poll(() => page.getByTestId('app-root').isVisible()).toBe(true);
    expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    await expect.poll(() => page.getByTestId('connectivity').textContent()).toContain('Offline');
    await page.screenshot({ path: path.join(shots, 'pwa-offline.png') });
  });
});
