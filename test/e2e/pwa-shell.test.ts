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
    // The precache is the app shell (the page's code, the agent and tool workers, the components' manifests). What
    // only some devices or sessions run — the engines' wasm, the GPU engines (web-llm ≈6 MB a copy, wllama 3's WebGPU
    // build ≈9 MB), the components' code, PDF.js and its worker, the node worker — is fetched on first use.
    const precached = await cachedFiles(page, 'precache');
    expect(precached.filter((e) => /\/assets\/(agent|tool)\.worker-[^/]+\.js$/.test(e.path))).toHaveLength(2);
    expect(precached.filter((e) => /\.wasm$|\/node\.worker-|\/pdf[.-]/.test(e.path) || e.webLlm || e.webGpuWllama).map((e) => e.path)).toEqual([]);
    expect(precached.filter((e) => e.path.startsWith('/components/')).every((e) => e.path.endsWith('/manifest.json'))).toBe(true);
    console.info(`precached: ${precached.length} files, ${(precached.reduce((n, e) => n + e.bytes, 0) / 2 ** 20).toFixed(1)} MiB`);
    await page.screenshot({ path: path.join(shots, 'pwa-online.png') });

    // A first session fetches what it runs — the CPU engine's wasm, its template's components — and keeps them.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
    await page.getByTestId('relay-models').getByRole('button', { name: /^Use / }).click();
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
    await page.getByRole('link', { name: 'Sessions', exact: true }).click();
    await page.getByLabel(/Assistant/).click();
    await page.getByLabel(/^Title/).fill('Offline later');
    await page.getByRole('button', { name: 'Create session' }).click();
    await chat(page, 'Hello while online.', 1);
    const fetched = await cachedFiles(page, 'runtime');
    expect(fetched.filter((e) => /\/assets\/[^/]+\.wasm$/.test(e.path)).length).toBeGreaterThan(0);
    expect(fetched.filter((e) => /^\/components\/(assistant|notes)\//.test(e.path)).length).toBeGreaterThan(0);

    // Offline for real: the relay is gone and the browser has no network.
    await relay.stop();
    await browser.context.setOffline(true);
    await page.reload();
    await expect.poll(() => page.getByTestId('app-root').isVisible()).toBe(true);
    expect(await page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
    await expect.poll(() => page.getByTestId('connectivity').textContent()).toContain('Offline');
    // The session (the page reloaded on it) runs offline on what its first use cached: the engine, the components, the model.
    // ("Opening…" until it has: the engine and the model come from the caches first.)
    await expect.poll(() => page.getByRole('heading', { level: 2 }).textContent(), { timeout: 60_000 }).toBe('Offline later');
    await chat(page, 'Hello while offline.', 2);
    await page.screenshot({ path: path.join(shots, 'pwa-offline.png') });
  });
});

/** The files in the service worker's precache, or in the caches it fills at run time, with what each holds. */
async function cachedFiles(page: Page, which: 'precache' | 'runtime'): Promise<{ path: string; bytes: number; webLlm: boolean; webGpuWllama: boolean }[]> {
  return page.evaluate(async (precache) => {
    const entries: { path: string; bytes: number; webLlm: boolean; webGpuWllama: boolean }[] = [];
    for (const name of await caches.keys()) {
      if (name.includes('precache') !== precache) continue;
      const cache = await caches.open(name);
      for (const request of await cache.keys()) {
        const body = (await (await cache.match(request))?.text()) ?? '';
        // Each engine whatever its file is called: web-llm's catalog names its model libraries; wllama 3's JS and
        // wasm carry emscripten's WebGPU bindings (emwgpu…), which the CPU engine's build lacks.
        entries.push({ path: new URL(request.url).pathname, bytes: body.length, webLlm: body.includes('binary-mlc-llm-libs'), webGpuWllama: body.includes('emwgpu') });
      }
    }
    return entries;
  }, which === 'precache');
}

/** Sends a message in the open session and waits until the agent's reply number `replies` is in its transcript. */
async function chat(page: Page, text: string, replies: number): Promise<void> {
  await page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor({ timeout: 60_000 });
  const box = page.getByLabel('Message');
  await box.fill(text);
  await box.press('Enter');
  await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 120_000 }).toBe(replies);
}
