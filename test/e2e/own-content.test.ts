/**
 * A person's own material into sessions, through the built app's own pages and controls (Debian's Chromium against
 * `ferry start`), on a desktop (1280×800) and a phone (390×844, touch): a survey gets its sources from a PDF picked
 * on disk, a pasted text and a web page the relay fetches from an HTTP server this file starts (on loopback, which a
 * relay listening on loopback only may fetch), then runs on the generated model and reads each of those sources
 * through its docs tool; a dev guide gets a folder and a .zip into its workspace. Bad input (a URL the relay cannot
 * fetch, a file that is not a PDF) is refused with its reason, and what was already chosen stays.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { strToU8, zipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { devices, startUi, type UiRig } from './ui-harness.ts';
import { makePdf } from '../support/pdf.ts';

/** One phrase from each source: the agent's reads of the docs tool must return each of them. */
const PDF_LINE = 'Tidal cranes unload twelve ships a day.';
const PASTED = 'Pilots board incoming vessels two miles offshore.';
const PAGE_LINE = 'The harbour dredges its channel every spring.';
const PAGE = `<!doctype html><html><head><title>Harbour almanac</title><script>document.title = 'scripted'</script></head><body><nav>Menu</nav><main><h1>Almanac</h1><p>${PAGE_LINE}</p></main></body></html>`;

let site: Server;
let siteUrl: string;

beforeAll(async () => {
  site = createServer((req, res) => {
    if (req.url === '/almanac.html') return void res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    if (req.url === '/photo.png') return void res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    res.writeHead(404, { 'content-type': 'text/plain' }).end('no such page');
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
});

afterAll(async () => {
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});

for (const device of devices) {
  describe(`a person's own content on a ${device.name}`, () => {
    let rig: UiRig;
    let page: Page;
    let work: string;
    const press = (l: Locator): Promise<void> => rig.press(l);

    beforeAll(async () => {
      rig = await startUi(device, 'content');
      ({ page, work } = rig);
    });

    afterAll(() => rig?.close());

    test('the model is the relay\'s generated GGUF, picked from disk', async () => {
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await page.getByTestId('pick-model').setInputFiles(path.join(work, 'tiny.gguf'));
      await expect.poll(() => page.getByTestId('model-in-use').textContent(), { timeout: 60_000 }).toMatch(/tiny\.gguf/);
    });

    test('a survey takes sources from a PDF, a pasted text and a web page, and reads each of them when it runs', async () => {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Survey/));
      expect(await page.getByTestId('template-needs').textContent()).toMatch(/Needs sources/);
      const picker = page.getByTestId('sources-picker');
      const chosen = picker.getByTestId('source-chosen');

      // A file that only claims to be a PDF is refused with the reason; nothing is chosen.
      const fake = path.join(work, 'fake.pdf');
      await writeFile(fake, 'not a pdf at all');
      await picker.getByTestId('source-files-input').setInputFiles(fake);
      await expect.poll(() => picker.textContent(), { timeout: 30_000 }).toMatch(/fake\.pdf is not a PDF this reader can open/);
      expect(await chosen.count()).toBe(0);

      const pdf = path.join(work, 'cranes.pdf');
      await writeFile(pdf, makePdf([['Harbour cranes', PDF_LINE], ['Second page.']], 'Crane report'));
      await picker.getByTestId('source-files-input').setInputFiles(pdf);
      await expect.poll(() => chosen.count(), { timeout: 30_000 }).toBe(1);
      expect(await chosen.nth(0).textContent()).toMatch(/Crane report.*cranes\.pdf · 2 pages/);

      await picker.getByLabel('Source title').fill('Pilot notes');
      await picker.getByLabel('Pasted text').fill(PASTED);
      await press(picker.getByRole('button', { name: 'Add pasted text' }));
      await expect.poll(() => chosen.count(), { timeout: 30_000 }).toBe(2);

      // The relay refuses what is not text, Markdown, HTML or PDF; the address stays for the person to fix.
      const address = picker.getByLabel('Web address');
      await address.fill(`${siteUrl}/photo.png`);
      await press(picker.getByRole('button', { name: 'Fetch' }));
      await expect.poll(() => picker.textContent(), { timeout: 30_000 }).toMatch(/"image\/png".*a source must be text, Markdown, HTML or PDF/);
      expect(await address.inputValue()).toBe(`${siteUrl}/photo.png`);
      expect(await chosen.count()).toBe(2);

      await address.fill(`${siteUrl}/almanac.html`);
      await press(picker.getByRole('button', { name: 'Fetch' }));
      await expect.poll(() => chosen.count(), { timeout: 30_000 }).toBe(3);
      expect(await chosen.nth(2).textContent()).toMatch(/Harbour almanac/);
      await rig.screen('content-sources-chosen');

      await page.getByLabel(/^Title/).fill('Harbour survey');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await rig.transcriptReady();
      await expect.poll(() => page.getByText('Added 3 sources to the session.').count(), { timeout: 60_000 }).toBe(1);

      // The topic alone: the survey lists the sources the person added, reads each one, and works from them.
      const box = page.getByLabel('Message');
      await box.fill('How a harbour runs');
      await box.press('Enter');
      const reads = page.getByTestId('tool-event').filter({ hasText: '"op":"get"' });
      await expect.poll(() => reads.count(), { timeout: 120_000 }).toBe(3);
      await expect.poll(() => page.getByTestId('live-turn').count(), { timeout: 300_000 }).toBe(0);
      const read = (await reads.allTextContents()).join('\n');
      for (const phrase of [PDF_LINE, PASTED, PAGE_LINE]) expect(read).toContain(phrase);
      // The page's text is its main content: no script ran, no navigation chrome came along.
      expect(read).not.toContain('scripted');
      expect(read).not.toContain('Menu');

      const tab = page.getByTestId('panel-tab');
      await expect.poll(() => tab.textContent()).toBe('Draft');
      await press(tab);
      const listed = page.getByTestId('session-sources').getByRole('listitem');
      await expect.poll(async () => (await listed.allTextContents()).map((t) => t.replace(/\s+/g, ' ')), { timeout: 30_000 }).toEqual(['Crane report', 'Pilot notes', `Harbour almanac · ${siteUrl}/almanac.html`]);
      await rig.screen('content-draft-sources');

      // More sources later, from the Draft tab: a step of their own on the branch.
      const more = page.getByTestId('add-sources');
      await more.getByLabel('Pasted text', { exact: true }).fill('# Lock keepers\n\nLock keepers log every boat.');
      await press(more.getByRole('button', { name: 'Add pasted text' }));
      await press(more.getByRole('button', { name: 'Add 1 source to the session' }));
      await expect.poll(() => listed.count(), { timeout: 60_000 }).toBe(4);
      expect(await listed.nth(3).textContent()).toBe('Lock keepers');
    });

    test('a dev guide takes a folder and a .zip into its workspace; .git and binary files are left out, with the reason', async () => {
      const folder = path.join(work, 'calc');
      await mkdir(path.join(folder, 'src'), { recursive: true });
      await mkdir(path.join(folder, '.git'), { recursive: true });
      await writeFile(path.join(folder, 'src', 'math.ts'), 'export const add = (a: number, b: number) => a + b;\n');
      await writeFile(path.join(folder, '.git', 'HEAD'), 'ref: refs/heads/main\n');
      const zip = path.join(work, 'docs.zip');
      await writeFile(zip, zipSync({ 'docs/guide.md': strToU8('# Guide\n'), 'docs/logo.png': new Uint8Array([0x89, 0x50, 0, 0]) }));

      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Dev guide/));
      expect(await page.getByTestId('template-needs').textContent()).toMatch(/Works over your code/);
      const picker = page.getByTestId('workspace-picker');
      await picker.getByTestId('workspace-folder-input').setInputFiles(folder);
      await expect.poll(() => picker.getByTestId('workspace-chosen-count').textContent(), { timeout: 30_000 }).toMatch(/^1 file ready/);
      await picker.getByTestId('workspace-zip-input').setInputFiles(zip);
      await expect.poll(() => picker.getByTestId('workspace-chosen-count').textContent(), { timeout: 30_000 }).toMatch(/^2 files ready/);
      expect(await picker.getByTestId('workspace-chosen').getByRole('listitem').allTextContents()).toEqual(['calc/src/math.ts', 'docs/guide.md']);
      const skipped = await picker.getByTestId('workspace-skipped').textContent();
      expect(skipped).toMatch(/calc\/\.git\/: version-control data/);
      expect(skipped).toMatch(/docs\/logo\.png: a binary file/);

      await page.getByLabel(/^Title/).fill('Calc guide');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await rig.transcriptReady();
      await expect.poll(() => page.getByText('Added 2 files to the workspace.').count(), { timeout: 60_000 }).toBe(1);

      const tab = page.getByTestId('panel-tab');
      await expect.poll(() => tab.textContent()).toBe('Workspace');
      await press(tab);
      const panel = page.getByTestId('workspace-panel');
      await expect.poll(() => panel.getByTestId('file-tree').getByRole('button').allTextContents(), { timeout: 30_000 }).toEqual(['math.ts', 'guide.md']);
      await rig.screen('content-workspace');

      // One more file from the Workspace tab; a file of the same path would replace it.
      await press(panel.getByText('Add files', { exact: true }));
      const notes = path.join(work, 'NOTES.md');
      await writeFile(notes, 'Remember the carry.\n');
      await panel.getByTestId('workspace-files-input').setInputFiles(notes);
      await press(panel.getByRole('button', { name: 'Add 1 file to the workspace' }));
      await expect.poll(() => panel.getByTestId('file-tree').getByRole('button').allTextContents(), { timeout: 60_000 }).toEqual(['math.ts', 'guide.md', 'NOTES.md']);
      expect(rig.pageErrors).toEqual([]);
    });
  });
}
