/**
 * The PWA as a person uses it, in Debian's Chromium against the built app served by `ferry start`, on a phone
 * (390×844, touch) and a desktop (1280×800): sessions, chat, the checkpoint tree, .ferry files, settings, offline.
 * Every screen is screenshot into test-results/ui/ and checked with axe-core (no serious or critical violation).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const shots = path.join(root, 'test-results', 'ui');
const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown[] }[];
}

const devices = [
  { name: 'phone', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true },
  { name: 'desktop', viewport: { width: 1280, height: 800 }, isMobile: false, hasTouch: false },
] as const;

for (const device of devices) {
  describe(`the Ferry UI on a ${device.name}`, () => {
    let relay: RelayProcess;
    let browser: FreshBrowser;
    let page: Page;
    let dataDir: string;
    let work: string;
    const pageErrors: string[] = [];
    /** Tap on the phone, click on the desktop. */
    const press = (l: Locator): Promise<void> => (device.hasTouch ? l.tap() : l.click());

    async function screen(name: string): Promise<void> {
      await page.screenshot({ path: path.join(shots, `${device.name}-${name}.png`), fullPage: true });
      if (!(await page.evaluate(() => 'axe' in globalThis))) await page.addScriptTag({ content: await axeSource });
      const violations = await page.evaluate(async () => {
        const axe = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: Violation[] }> } }).axe;
        return (await axe.run(document, { resultTypes: ['violations'] })).violations;
      });
      const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(serious.map((v) => `${name}: ${v.id} (${v.impact}) ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`)).toEqual([]);
    }

    const transcriptReady = (): Promise<void> => page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor();

    beforeAll(async () => {
      if (!existsSync(path.join(root, 'dist', 'index.html'))) {
        throw new Error('dist/ has no build: run `npm run build` first (`npm test` builds before the end-to-end suite).');
      }
      await mkdir(shots, { recursive: true });
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-ui-data-'));
      work = await mkdtemp(path.join(os.tmpdir(), 'ferry-ui-files-'));
      relay = await startRelayProcess(['--data', dataDir]);
      browser = await launchFreshChromium({ viewport: { ...device.viewport }, isMobile: device.isMobile, hasTouch: device.hasTouch });
      page = await browser.context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      await page.goto(relay.url);
      await page.locator('html[data-ready="true"]').waitFor();
    });

    afterAll(async () => {
      await browser?.close();
      await relay?.stop();
      for (const dir of [dataDir, work]) if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('starts with an empty session list', async () => {
      await expect.poll(() => page.getByTestId('no-sessions').isVisible()).toBe(true);
      await screen('sessions-empty');
    });

    test('creates a session from a template and sends messages through the session core', async () => {
      await press(page.getByLabel(/Dev guide/));
      await page.getByLabel(/^Title/).fill('Trip plan');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url()).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      expect(await page.getByRole('heading', { level: 2 }).textContent()).toBe('Trip plan');
      await expect.poll(() => page.getByTestId('empty-transcript').isVisible()).toBe(true);

      const box = page.getByLabel('Message');
      await box.fill('first **message**');
      await box.press('Enter');
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(1);
      await box.fill('second message\nwith two lines');
      await press(page.getByRole('button', { name: 'Send' }));
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(2);
      expect(await page.getByTestId('user-message').nth(0).textContent()).toContain('first **message**');
      expect(await box.inputValue()).toBe('');
      await screen('chat');
    });

    test('rolls back from the tree, undoes it, forks and compares branches', async () => {
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => page.getByTestId('tree-node').count()).toBe(3);
      const firstNode = page.getByTestId('tree-node').filter({ hasText: 'You: first **message**' });
      await press(firstNode);
      await press(page.getByRole('button', { name: /Roll back .main. to here/ }));
      await expect.poll(() => page.getByTestId('tree-node').filter({ hasText: '(head)' }).textContent()).toContain('first **message**');
      await screen('tree-rolled-back');

      await press(page.getByRole('button', { name: /Undo the last rollback/ }));
      await expect.poll(() => page.getByTestId('tree-node').filter({ hasText: '(head)' }).textContent()).toContain('second message');

      await press(firstNode);
      await page.getByLabel('New branch name').fill('alt');
      await press(page.getByRole('button', { name: 'Fork here' }));
      await expect.poll(() => page.getByTestId('current-branch').textContent()).toBe('alt');
      await expect.poll(() => page.getByTestId('branch').count()).toBe(2);

      await press(page.getByRole('link', { name: 'Chat' }));
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(1);
      await page.getByLabel('Message').fill('a different second message');
      await page.getByLabel('Message').press('Enter');
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(2);

      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => page.getByTestId('tree-node').count()).toBe(5);
      await page.getByLabel('Branch A').selectOption('main');
      await page.getByLabel('Branch B').selectOption('alt');
      await press(page.getByRole('button', { name: 'Compare' }));
      await expect.poll(() => page.getByTestId('compare-summary').textContent()).toMatch(/1 shared step; then 1 only on “main” and 2 only on “alt”/);
      expect(await page.getByTestId('compare-a').textContent()).toContain('second message');
      expect(await page.getByTestId('compare-b').textContent()).toContain('a different second message');
      await screen('tree-compare');

      await press(page.getByRole('button', { name: 'Switch to main' }));
      await expect.poll(() => page.getByTestId('current-branch').textContent()).toBe('main');
    });

    test('exports a .ferry file, deletes with undo, imports it back and refuses a bad file', async () => {
      const download = page.waitForEvent('download');
      await press(page.getByRole('button', { name: 'Export .ferry' }));
      const file = path.join(work, (await download).suggestedFilename());
      expect(path.basename(file)).toBe('Trip-plan.ferry');
      await (await download).saveAs(file);

      await press(page.getByRole('link', { name: '← Sessions' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(1);
      const row = page.getByTestId('session-row');
      expect(await row.textContent()).toMatch(/Dev guide/);
      expect(await row.textContent()).toMatch(/This device/);
      await expect.poll(() => row.textContent()).toMatch(/\d+(\.\d)? (B|KB)/);

      await press(page.getByRole('button', { name: 'Delete Trip plan' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(0);
      await press(page.getByRole('button', { name: 'Undo' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(1);

      await press(page.getByRole('button', { name: 'Delete Trip plan' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(0);
      await page.getByTestId('import-input').setInputFiles(file);
      await expect.poll(() => page.url()).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(2);
      expect(await page.getByTestId('current-branch').textContent()).toBe('main');
      expect(await page.getByRole('heading', { level: 2 }).textContent()).toBe('Trip plan');

      const bad = path.join(work, 'broken.ferry');
      const bytes = await readFile(file);
      bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
      await writeFile(bad, bytes);
      await press(page.getByRole('link', { name: '← Sessions' }));
      await page.getByTestId('import-input').setInputFiles(bad);
      const error = page.getByTestId('error-toast');
      await expect.poll(() => error.getAttribute('data-code')).toMatch(/^snapshot\//);
      expect(await error.textContent()).toMatch(/damaged|checksum/);
      expect(await error.textContent()).not.toMatch(/at \w+ \(|\.ts:\d+/);
      await screen('sessions-import-error');
      await press(page.getByRole('button', { name: 'Dismiss error' }));
    });

    test('renames and searches sessions', async () => {
      await press(page.getByRole('button', { name: /^Rename / }));
      const field = page.getByLabel(/^New title for/);
      await field.fill('Holiday itinerary');
      await field.press('Enter');
      await expect.poll(() => page.getByTestId('session-row').textContent()).toContain('Holiday itinerary');
      await press(page.getByLabel(/Podcast/));
      await page.getByLabel(/^Title/).fill('Weekly show');
      await press(page.getByRole('button', { name: 'Create session' }));
      await transcriptReady();
      await press(page.getByRole('link', { name: '← Sessions' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(2);
      await page.getByLabel('Search sessions').fill('podcast');
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(1);
      expect(await page.getByTestId('session-row').textContent()).toContain('Weekly show');
      await page.getByLabel('Search sessions').fill('holiday');
      await expect.poll(() => page.getByTestId('session-row').textContent()).toContain('Holiday itinerary');
      await screen('sessions-search');
      await page.getByLabel('Search sessions').fill('');
    });

    test('saves settings, which persist across a reload', async () => {
      await press(page.getByRole('link', { name: 'Settings' }));
      await page.getByLabel('Relay URL').fill('not a url');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code')).toBe('app/bad-relay-url');
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await page.getByLabel('Relay URL').fill('https://relay.example.org');
      await press(page.getByLabel('My devices'));
      await press(page.getByLabel('Cheapest'));
      await page.getByLabel(/Monthly budget/).fill('12.5');
      await press(page.getByLabel('Dark'));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
      expect(await page.evaluate(() => document.documentElement.style.colorScheme)).toBe('dark');
      expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(17, 25, 27)');
      await screen('settings-dark');

      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await page.getByLabel('Relay URL').waitFor();
      expect(await page.getByLabel('Relay URL').inputValue()).toBe('https://relay.example.org');
      expect(await page.getByLabel('My devices').isChecked()).toBe(true);
      expect(await page.getByLabel('Cheapest').isChecked()).toBe(true);
      expect(await page.getByLabel(/Monthly budget/).inputValue()).toBe('12.5');
      expect(await page.getByLabel('Dark').isChecked()).toBe(true);
      expect(await page.evaluate(() => document.documentElement.style.colorScheme)).toBe('dark');
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await page.getByTestId('session-list').waitFor();
      await screen('sessions-dark');
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await press(page.getByLabel('System'));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.evaluate(() => document.documentElement.style.colorScheme)).toBe('light dark');
    });

    test('reloads offline from the service worker with the local sessions listed', async () => {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await expect.poll(() => page.getByTestId('offline-ready').isVisible(), { timeout: 60_000 }).toBe(true);
      // Offline for real: the relay is gone and the browser has no network.
      await relay.stop();
      await browser.context.setOffline(true);
      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await expect.poll(() => page.getByTestId('connectivity').textContent()).toContain('Offline');
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(2);
      await screen('sessions-offline');
      await press(page.getByRole('link', { name: 'Holiday itinerary' }));
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(2);
      await screen('chat-offline');
      expect(pageErrors).toEqual([]);
    });
  });
}
