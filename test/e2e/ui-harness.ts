/**
 * What the end-to-end UI suites share: the two devices they run on, and a rig per device — `ferry start` on a fresh
 * data folder with a generated model, a fresh Chromium profile with that device's viewport, the page loaded — with
 * helpers to press (tap on the phone, click on the desktop) and to screenshot a screen and check it with axe-core.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';
import { describeOnFailure, describePage } from '../support/failure-report.ts';
import { waitFor } from '../support/wait.ts';

export const root = path.resolve(import.meta.dirname, '..', '..');
export const shots = path.join(root, 'test-results', 'ui');
const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const devices = [
  { name: 'phone', viewport: { width: 360, height: 780 }, isMobile: true, hasTouch: true },
  { name: 'desktop', viewport: { width: 1280, height: 800 }, isMobile: false, hasTouch: false },
] as const;
export type Device = (typeof devices)[number];

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

export interface UiRig {
  relay: RelayProcess;
  browser: FreshBrowser;
  page: Page;
  /** The relay's data folder, and a folder for the test's own files (the generated model is work/tiny.gguf). */
  dataDir: string;
  work: string;
  /** Uncaught errors of the page: a suite ends by expecting none. */
  pageErrors: string[];
  /** The page's console errors and warnings, for a failure to report. */
  consoleLog: string[];
  /** Tap on the phone, click on the desktop. */
  press(l: Locator): Promise<void>;
  /** Screenshot into test-results/ui/<device>-<name>.png, then axe-core: no serious or critical violation. */
  screen(name: string): Promise<void>;
  /** The session transcript is rendered from the store. */
  transcriptReady(): Promise<void>;
  /**
   * The tab dies: its renderer crashes at once (as when the system kills it), whatever its page is doing, and the
   * same address opens in a new tab, which becomes `page`.
   */
  crashAndReopen(): Promise<Page>;
  close(): Promise<void>;
}

/** `chromiumArgs`: extra Chromium flags (e.g. --enable-unsafe-webgpu for SwiftShader's WebGPU); `relayArgs`: more `ferry start` flags. */
export async function startUi(device: Device, label: string, options: { chromiumArgs?: readonly string[]; relayArgs?: readonly string[] } = {}): Promise<UiRig> {
  if (!existsSync(path.join(root, 'dist', 'index.html'))) {
    throw new Error('dist/ has no build: run `npm run build` first (`npm test` builds before the end-to-end suite).');
  }
  await mkdir(shots, { recursive: true });
  const dataDir = await mkdtemp(path.join(os.tmpdir(), `ferry-${label}-data-`));
  const work = await mkdtemp(path.join(os.tmpdir(), `ferry-${label}-files-`));
  // An explicit generated model: the relay's embedded cloud worker runs it, lists itself and offers the file.
  const model = path.join(work, 'tiny.gguf');
  await writeFile(model, generateTinyModel({ ctx: 4096 }));
  const relay = await startRelayProcess(['--data', dataDir, '--model', model, ...(options.relayArgs ?? [])]);
  const browser = await launchFreshChromium({ viewport: { ...device.viewport }, isMobile: device.isMobile, hasTouch: device.hasTouch, ...(options.chromiumArgs ? { args: options.chromiumArgs } : {}) });
  const pageErrors: string[] = [];
  const consoleLog: string[] = [];
  const open = async (url: string): Promise<Page> => {
    const opened = await browser.context.newPage();
    opened.on('pageerror', (err) => pageErrors.push(err.message));
    opened.on('console', (m) => void (m.type() === 'error' || m.type() === 'warning' ? consoleLog.push(`${m.type()}: ${m.text()}`) : undefined));
    await opened.goto(url);
    await opened.locator('html[data-ready="true"]').waitFor();
    return opened;
  };
  let page = await open(relay.url);
  const forget = describeOnFailure(async () => `${await describePage(page, `${device.name} (${label})`)}\n\npage errors: ${JSON.stringify(pageErrors)}\n\npage logged:\n${consoleLog.slice(-30).join('\n')}\n\nrelay output:\n${relay.output().slice(-3000)}`);
  const rig: UiRig = {
    relay,
    browser,
    page,
    dataDir,
    work,
    pageErrors,
    consoleLog,
    press: (l) => (device.hasTouch ? l.tap() : l.click()),
    async screen(name) {
      await page.screenshot({ path: path.join(shots, `${device.name}-${name}.png`), fullPage: true });
      // Nothing scrolls sideways: the page is no wider than the viewport (the phone's is 360 px).
      const wide = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth <= width) return [];
        return [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > width + 1)
          .slice(-5)
          .map((e) => `${e.tagName.toLowerCase()}${e.className ? `.${String(e.className).split(' ').join('.')}` : ''} "${(e.textContent ?? '').trim().slice(0, 40)}" (right edge ${Math.round(e.getBoundingClientRect().right)} px)`);
      });
      expect(wide, `${name}: wider than the ${device.viewport.width} px viewport`).toEqual([]);
      if (!(await page.evaluate(() => 'axe' in globalThis))) await page.addScriptTag({ content: await axeSource });
      const violations = await page.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Violation[] }> } }).axe;
        return (await axe.run(document, { resultTypes: ['violations'] })).violations;
      });
      const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(serious.map((v) => `${name}: ${v.id} (${v.impact}) ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`)).toEqual([]);
    },
    transcriptReady: () => page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor(),
    async crashAndReopen() {
      const url = page.url();
      // Page.crash ends the renderer from its IO thread: a page busy streaming does not get to finish anything first.
      // The command itself is never answered (the renderer is gone); the page's crash event says it happened.
      const cdp = await browser.context.newCDPSession(page);
      const crashed = page.waitForEvent('crash');
      void cdp.send('Page.crash').catch(() => undefined);
      await crashed;
      await page.close();
      page = rig.page = await open(url);
      return page;
    },
    async close() {
      forget();
      await browser.close();
      await relay.stop();
      for (const dir of [dataDir, work]) await rm(dir, { recursive: true, force: true });
    },
  };
  return rig;
}

/**
 * Saves Settings' reply length in `page`'s tab (each tab reads Settings when it loads, and applies it to every run
 * it starts). Runs whose replies nothing cuts short need few tokens: the generated model writes gibberish up to the
 * limit, 512 by default.
 */
export async function saveReplyLength(page: Page, press: (l: Locator) => Promise<void>, tokens: number): Promise<void> {
  await press(page.getByRole('link', { name: 'Settings', exact: true }));
  await page.getByLabel('Reply length (tokens)').fill(String(tokens));
  await press(page.getByRole('button', { name: 'Save settings' }));
  // The shared wait, not expect.poll: suites call this from beforeAll too.
  await waitFor('"Settings saved"', async () => (await page.getByTestId('toast').last().textContent({ timeout: 1000 }).catch(() => ''))?.includes('Settings saved'), { timeoutMs: 30_000 });
}

/**
 * Presses "Move to the cloud worker" in the open "Where it runs" panel once it can be pressed (the panel measures
 * the device and the relay first); a button that stays disabled fails with what the panel says.
 */
export async function pressMoveToCloud(page: Page, press: (l: Locator) => Promise<void> = (l) => l.click()): Promise<void> {
  const button = page.getByRole('button', { name: 'Move to the cloud worker' });
  await expect
    .poll(() => button.isEnabled(), { timeout: 60_000 })
    .toBe(true)
    .catch(async (err: unknown) => {
      const says = await page.getByTestId('where-it-runs').textContent().catch(() => null);
      throw new Error(`"Move to the cloud worker" stayed disabled; the panel says: ${says}`, { cause: err });
    });
  await press(button);
}
