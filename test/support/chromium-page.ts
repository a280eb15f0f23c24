/**
 * A real Chromium page served by Vite from `root`, for node-side tests and benchmarks that need what vitest's
 * browser mode cannot give: reloading the page, or a CDP session (e.g. to shrink the storage quota).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type CDPSession, type Page } from 'playwright-core';
import { createServer } from 'vite';
import { chromiumArgs, requireChromium } from './chromium.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ChromiumPage {
  page: Page;
  cdp: CDPSession;
  url: string;
  /** Loads (or reloads) the page and waits until its script sets document.title to "ready". */
  load(): Promise<void>;
  close(): Promise<void>;
}

export async function openChromiumPage(root: string): Promise<ChromiumPage> {
  const server = await createServer({
    configFile: false,
    root,
    logLevel: 'error',
    server: { port: 0, host: '127.0.0.1', fs: { allow: [repoRoot] } },
    optimizeDeps: { include: ['idb', '@msgpack/msgpack', 'fflate', 'valibot'] },
  });
  await server.listen();
  const browser = await chromium.launch({ executablePath: requireChromium(), args: chromiumArgs });
  const page = await browser.newPage();
  const url = server.resolvedUrls!.local[0]!;
  const cdp = await page.context().newCDPSession(page);
  return {
    page,
    cdp,
    url,
    async load() {
      await page.goto(url);
      await page.waitForFunction(() => document.title === 'ready', undefined, { timeout: 60_000 });
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
