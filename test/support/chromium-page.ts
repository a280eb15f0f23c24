/**
 * A real Chromium page served by Vite from `root`, for node-side tests and benchmarks that need what vitest's
 * browser mode cannot give: reloading the page, or a CDP session (e.g. to shrink the storage quota).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
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

export interface ChromiumPageOptions {
  /**
   * Extra files by URL path ("/model.gguf" → a file on disk), streamed from disk by the page's own server:
   * Playwright's route.fulfill() holds a body in memory and closes the page on ~100 MB ones.
   */
  readonly files?: Readonly<Record<string, string>>;
  /** Serve the page cross-origin isolated (COOP + COEP), as the app is, so WebAssembly threads can run. */
  readonly isolated?: boolean;
}

export async function openChromiumPage(root: string, options: ChromiumPageOptions = {}): Promise<ChromiumPage> {
  const files = options.files ?? {};
  const server = await createServer({
    configFile: false,
    root,
    plugins: [
      {
        name: 'ferry-extra-files',
        configureServer(dev) {
          dev.middlewares.use((req, res, next) => {
            const file = files[req.url ?? ''];
            if (!file) return next();
            stat(file).then(
              (s) => {
                res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': s.size });
                createReadStream(file).pipe(res);
              },
              (err: unknown) => next(err),
            );
          });
        },
      },
    ],
    logLevel: 'error',
    server: {
      port: 0,
      host: '127.0.0.1',
      fs: { allow: [repoRoot] },
      ...(options.isolated ? { headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } } : {}),
    },
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
