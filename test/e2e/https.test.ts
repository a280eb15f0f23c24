/**
 * A phone on the home network, as a person follows the README: `ferry start --tls local --public-url
 * https://ferry.test:<port>`, a name other than localhost (mapped to the loopback address), and a browser that
 * trusts the relay's certificate as a phone that installed the relay's CA would (by its public key). Over HTTPS the
 * app is a secure context: the service worker installs, the relay's model runs in a session, and Share gives a
 * link at the public address. Over plain HTTP the same name gets the page that says why it cannot work and how
 * to fix it, with the CA certificate to download.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { certificateDer, certificateFacts } from '../../server/tls/certificates.ts';
import { parsePairingLink } from '../../src/core/protocol/index.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { freePort } from '../support/ports.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const shots = path.join(root, 'test-results', 'e2e');
const NAME = 'ferry.test';

describe('a phone reaches the relay by name over HTTPS', () => {
  let relay: RelayProcess;
  let browser: FreshBrowser;
  let page: Page;
  let dataDir: string;
  let work: string;
  let port: number;
  let publicUrl: string;
  const pageErrors: string[] = [];
  const tap = (l: Locator): Promise<void> => l.tap();

  beforeAll(async () => {
    if (!existsSync(path.join(root, 'dist', 'index.html'))) {
      throw new Error('dist/ has no build: run `npm run build` first (`npm test` builds before the end-to-end suite).');
    }
    await mkdir(shots, { recursive: true });
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-https-data-'));
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-https-files-'));
    const model = path.join(work, 'tiny.gguf');
    await writeFile(model, generateTinyModel({ ctx: 4096 }));
    port = await freePort();
    publicUrl = `https://${NAME}:${port}`;
    relay = await startRelayProcess(['--data', dataDir, '--model', model, '--host', '127.0.0.1', '--port', String(port), '--tls', 'local', '--public-url', publicUrl]);
    // The relay made its CA and a server certificate on first start; the phone trusts the CA.
    const ca = await readFile(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const server = await readFile(path.join(dataDir, 'tls', 'server.crt'), 'utf8');
    expect(certificateFacts(server).signedBy(ca)).toBe(true);
    expect(certificateFacts(server).covers({ dns: [NAME], ips: [] })).toBe(true);
    browser = await launchFreshChromium({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      trustSpki: [certificateFacts(server).spkiSha256],
      mapHosts: { [NAME]: '127.0.0.1' },
    });
    page = await browser.context.newPage();
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(publicUrl);
    await page.locator('html[data-ready="true"]').waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.stop();
    for (const dir of [dataDir, work]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('is a secure context: the service worker installs and the app is ready offline, with no warning shown', async () => {
    expect(relay.url).toBe(`https://127.0.0.1:${port}`);
    expect(await page.evaluate(() => ({ secure: isSecureContext, isolated: crossOriginIsolated }))).toEqual({ secure: true, isolated: true });
    await page.getByTestId('offline-ready').waitFor({ timeout: 120_000 });
    await expect.poll(() => page.evaluate(async () => (await navigator.serviceWorker.ready).active?.state)).toBe('activated');
    // The page is at the public address: nothing to warn about or to set up.
    await page.waitForLoadState('networkidle');
    expect(await page.getByTestId('insecure-context').count()).toBe(0);
    expect(await page.getByTestId('local-only').count()).toBe(0);
    expect(await page.getByTestId('phone-setup').count()).toBe(0);
    await page.screenshot({ path: path.join(shots, 'https-phone-ready.png'), fullPage: true });
  });

  test('uses the relay\'s model and chats in a new session', async () => {
    await tap(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
    await tap(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('model-in-use').textContent()).toMatch(/from the relay/);

    await tap(page.getByRole('link', { name: 'Sessions', exact: true }));
    await tap(page.getByLabel(/Dev guide/));
    await page.getByLabel(/^Title/).fill('Phone session');
    await tap(page.getByRole('button', { name: 'Create session' }));
    await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(new RegExp(`^${publicUrl}/#/s/[0-9a-f]{32}$`));
    await page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor();
    const box = page.getByLabel('Message');
    await box.fill('hello from the phone');
    await box.press('Enter');
    await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 90_000 }).toBe(1);
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
    expect(await page.getByTestId('agent-message').first().textContent()).toMatch(/\d+ tokens/);
  });

  test('Share gives a link at the public address, with its QR code', async () => {
    await tap(page.getByRole('button', { name: 'Share' }));
    const link = page.getByTestId('share-link');
    await link.waitFor({ timeout: 60_000 });
    const shared = await link.inputValue();
    expect(shared).toMatch(new RegExp(`^${publicUrl}/s/[0-9a-f]{40}#k=[A-Za-z0-9_-]{43}$`));
    expect(await page.getByTestId('share-qr').locator('svg').count()).toBe(1);
    await page.screenshot({ path: path.join(shots, 'https-phone-share.png'), fullPage: true });
    await tap(page.getByTestId('share-dialog').getByRole('button', { name: 'Close' }));
    // The link opens the session in the app, over HTTPS at that address.
    const opened = await browser.context.newPage();
    await opened.goto(shared);
    await opened.getByTestId('transcript').and(opened.locator('[data-ready="true"]')).waitFor({ timeout: 60_000 });
    expect(await opened.getByTestId('user-message').allTextContents()).toEqual([expect.stringContaining('hello from the phone')]);
    await opened.close();
    expect(pageErrors).toEqual([]);
  });

  test('the same name over plain HTTP says it is not a secure context, how to fix it, and offers the CA certificate', async () => {
    const plain = await browser.context.newPage();
    const plainUrl = `http://${NAME}:${port}`;
    await plain.goto(plainUrl);
    const notice = plain.getByTestId('insecure-context');
    await notice.waitFor();
    expect(await plain.evaluate(() => isSecureContext)).toBe(false);
    expect(await notice.textContent()).toContain(`This page is not a secure context because it was opened over plain HTTP at ${NAME}:${port}; phones need HTTPS`);
    expect(await plain.getByTestId('insecure-fix').getByRole('link').getAttribute('href')).toBe(publicUrl);
    // The steps to trust the relay's CA, with the certificate to download here.
    const steps = plain.getByTestId('ca-trust-steps');
    expect(await steps.textContent()).toMatch(/Android 14.*Encryption & credentials.*iOS 17 and 18.*Certificate Trust Settings/s);
    expect(await steps.textContent()).toContain('Ferry local CA (');
    const link = plain.getByTestId('ca-download');
    expect(await link.getAttribute('href')).toBe(`${plainUrl}/ca.crt`);
    // Downloaded as a person does, by tapping the link: the CA's certificate in DER, the form phones install.
    const [download] = await Promise.all([plain.waitForEvent('download'), tap(link)]);
    expect(download.suggestedFilename()).toBe('ferry-local-ca.crt');
    const der = await readFile((await download.path())!);
    expect(der.equals(certificateDer(await readFile(path.join(dataDir, 'tls', 'ca.crt'), 'utf8')))).toBe(true);
    // The type iOS opens as a profile to install (asked of the relay directly: this process cannot resolve the test name).
    const head = await plain.request.get(`http://127.0.0.1:${port}/ca.crt`);
    expect(head.headers()['content-type']).toBe('application/x-x509-ca-cert');
    await plain.screenshot({ path: path.join(shots, 'https-phone-plain-http.png'), fullPage: true });

    // Nothing blames the browser: what is missing is missing because of the address.
    await tap(plain.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    expect(await plain.getByRole('banner').textContent()).toMatch(/opened over plain HTTP at ferry\.test:\d+, which is not a secure context, so the browser gives it no service worker/);
    await tap(plain.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
    await plain.getByText(/opened over plain HTTP at ferry\.test:\d+, which is not a secure context, so the browser gives it no origin-private file system/).first().waitFor();
    expect(await plain.getByRole('main').textContent()).toMatch(/this page is not a secure context \(plain HTTP\), and browsers give WebGPU to secure contexts only/);
    expect(await plain.locator('body').textContent()).not.toMatch(/This browser has no|this browser exposes no/i);
    await plain.screenshot({ path: path.join(shots, 'https-phone-plain-http-models.png'), fullPage: true });
    await plain.close();
  });

  test('on the relay\'s own machine (https://localhost), the phone\'s address is offered and pairing links carry it', async () => {
    const laptop = await browser.context.newPage();
    await laptop.goto(`https://localhost:${port}`);
    await laptop.locator('html[data-ready="true"]').waitFor();
    const setup = laptop.getByTestId('phone-setup');
    await setup.waitFor();
    expect(await setup.locator('summary').textContent()).toBe(`Use Ferry on a phone: ${publicUrl}`);
    await tap(setup.locator('summary'));
    await laptop.getByRole('img', { name: `QR code of http://${NAME}:${port}` }).locator('svg').waitFor();

    await tap(laptop.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }));
    await tap(laptop.getByTestId('show-pairing'));
    const link = laptop.getByTestId('pairing-link');
    await link.waitFor();
    expect(parsePairingLink(await link.inputValue()).relay).toBe(publicUrl);
    await laptop.close();
  });
});
