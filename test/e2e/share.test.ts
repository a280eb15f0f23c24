/**
 * Share links end to end: the relay (`ferry start` in a child process, serving the built PWA), browser A
 * publishes a session from its IndexedDB, and browser B — a separate Chromium with its own profile, nothing
 * shared — opens `https://<relay>/s/<id>#k=<key>` and imports the same branches and checkpoints. The relay serves
 * the PWA for the link, never sees the key, and a second publish uploads only what changed.
 *
 * The page logic is the real browser relay client (src/browser/relay-client.ts) bundled from share-page.ts and
 * injected into the relay's own page, so it runs at the relay's origin exactly as the PWA does.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';
import type { Described, Published } from './share-page.ts';

interface ShareApi {
  create(db: string, steps: number): Promise<Described>;
  more(db: string, sessionId: string, from: number, count: number): Promise<Described>;
  publish(db: string, sessionId: string, saved?: string): Promise<Published>;
  openFromLocation(db: string): Promise<{ described: Described; hrefAfter: string; relayOrigin: string; keyHex: string }>;
}
declare const ferryShare: ShareApi;

const root = path.resolve(import.meta.dirname, '..', '..');

async function bundleHarness(): Promise<string> {
  const out = await build({
    entryPoints: [path.join(import.meta.dirname, 'share-page.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'silent',
  });
  return out.outputFiles[0]!.text;
}

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('share links between two browsers', () => {
  let relay: RelayProcess;
  let dataDir: string;
  let harness: string;
  let a: FreshBrowser;
  let b: FreshBrowser;
  let pageA: Page;
  let pageB: Page;

  /** Loads `url` (a page the relay serves) and injects the harness into it. */
  async function open(page: Page, url: string): Promise<void> {
    // From a blank page, so opening the same link again is a real load, not a same-document fragment change.
    await page.goto('about:blank');
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    expect(await res?.text()).toMatch(/<!doctype html>/i);
    await page.addScriptTag({ content: harness });
    await page.waitForFunction(() => 'ferryShare' in globalThis);
  }

  beforeAll(async () => {
    if (!existsSync(path.join(root, 'dist', 'index.html'))) {
      throw new Error('dist/ has no build: run `npm run build` first (`npm test` builds before the end-to-end suite).');
    }
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-e2e-share-'));
    [relay, harness] = await Promise.all([startRelayProcess(['--data', dataDir]), bundleHarness()]);
    a = await launchFreshChromium();
    b = await launchFreshChromium();
    pageA = await a.context.newPage();
    pageB = await b.context.newPage();
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await relay?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  test('B opens the link from A and has the same branches, checkpoints and component state; then follows an update', async () => {
    await open(pageA, relay.url);
    const original = await pageA.evaluate(() => ferryShare.create('ferry-a', 6));
    expect(Object.keys(original.heads).sort()).toEqual(['idea', 'main']);
    const first = await pageA.evaluate((id) => ferryShare.publish('ferry-a', id), original.sessionId);
    expect(first.link).toMatch(new RegExp(`^${relay.url}/s/[0-9a-f]{40}#k=[A-Za-z0-9_-]{43}$`));
    expect(first.qrSvg).toMatch(/^<svg[^>]*>.*<\/svg>\s*$/s);

    // B: its own profile; it has never seen the session.
    await open(pageB, first.link);
    const opened = await pageB.evaluate(() => ferryShare.openFromLocation('ferry-b'));
    expect(opened.described).toEqual(original);
    expect(opened.relayOrigin).toBe(relay.url);
    // The key is gone from the address bar once read.
    expect(opened.hrefAfter).toBe(first.link.slice(0, first.link.indexOf('#')));

    // The relay never saw the key or the plaintext: its data folder holds neither.
    const key = Buffer.from(opened.keyHex, 'hex');
    const keyText = Buffer.from(first.link.slice(first.link.indexOf('#k=') + 3));
    for (const f of await allFiles(dataDir)) {
      const bytes = await readFile(f);
      for (const needle of [key, keyText, Buffer.from('question number'), Buffer.from(original.sessionId)]) {
        expect(bytes.includes(needle), `${path.relative(dataDir, f)} contains a secret`).toBe(false);
      }
    }

    // A takes 10 more steps and publishes again: only the new objects go up, and B, opening the same link, follows.
    const grown = await pageA.evaluate((id) => ferryShare.more('ferry-a', id, 100, 10), original.sessionId);
    const second = await pageA.evaluate(([id, saved]) => ferryShare.publish('ferry-a', id, saved), [original.sessionId, first.saved] as const);
    expect(second.link).toBe(first.link);
    // Per step: a checkpoint, a chunk list and the one or two 64 KiB pages the step touched.
    expect(second.objects).toBeGreaterThanOrEqual(20);
    expect(second.objects).toBeLessThanOrEqual(40);
    expect(second.objectBytes).toBeLessThanOrEqual(second.objects * (64 * 1024 + 1024));
    await open(pageB, first.link);
    expect((await pageB.evaluate(() => ferryShare.openFromLocation('ferry-b'))).described).toEqual(grown);
  });
});
