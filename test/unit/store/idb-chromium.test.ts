/**
 * IndexedDB in a real Chromium page, driven from node so the page can be reloaded and the quota shrunk through
 * CDP: a session survives a reload intact, and a full disk gives a typed error with every acknowledged step kept.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openChromiumPage, type ChromiumPage } from '../../support/chromium-page.ts';
import type { Written } from '../../support/idb-page/main.ts';

interface PageApi {
  write(db: string, steps: number): Promise<Written>;
  read(db: string, sessionId: string): Promise<Written>;
  fill(db: string): Promise<{ code: string; acknowledged: Written; after: Written }>;
}
declare const ferryIdb: PageApi;

let chrome: ChromiumPage;
beforeAll(async () => {
  chrome = await openChromiumPage(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../support/idb-page'));
  // Before the origin touches storage: Chromium applies an override to an origin whose usage it has not cached yet.
  await chrome.cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(chrome.url).origin, quotaSize: 8 << 20 });
  await chrome.load();
}, 120_000);
afterAll(async () => {
  await chrome?.close();
});

it('a session in IndexedDB survives a page reload intact', async () => {
  const written = await chrome.page.evaluate(() => ferryIdb.write('reload-db', 8));
  expect(written.steps).toBe(9);
  await chrome.load();
  const read = await chrome.page.evaluate((id) => ferryIdb.read('reload-db', id), written.sessionId);
  expect(read).toEqual(written);
});

it('a real quota error is typed, and every acknowledged step survives it', async () => {
  const result = await chrome.page.evaluate(() => ferryIdb.fill('quota-db'));
  expect(result.code).toBe('store/quota-exceeded');
  expect(result.after.steps).toBe(result.acknowledged.steps);
  expect(result.after.steps).toBeGreaterThan(1);
  await chrome.load();
  expect((await chrome.page.evaluate((id) => ferryIdb.read('quota-db', id), result.after.sessionId)).steps).toBe(result.acknowledged.steps);
});
