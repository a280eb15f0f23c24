/**
 * A model from the catalog, through the built app: the relay's deployment catalog (`ferry start --catalog`, here
 * two entries for a generated model on a file server of this test) shows on the Models screen by name, size and
 * license; one click downloads the model, checks it against the catalog's SHA-256 and puts it to use, and a session
 * runs on it. An entry whose SHA-256 is not the file's is refused with a clear error, and nothing of it is kept.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { devices, startUi, type UiRig } from './ui-harness.ts';

const model = generateTinyModel({ seed: 9, ctx: 4096 });
const sha256 = createHash('sha256').update(model).digest('hex');

/** A plain file server, as a model mirror is: the file with CORS, nothing else. */
async function serveModel(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    if (!req.url?.startsWith('/tiny.gguf')) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': model.length, 'access-control-allow-origin': '*' }).end(model);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny.gguf` };
}

describe('the model catalog on a phone', () => {
  let rig: UiRig;
  let page: Page;
  let files: { server: Server; url: string };
  let dir: string;

  beforeAll(async () => {
    files = await serveModel();
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-catalog-'));
    const entry = { family: 'tiny', parameters: '1M', quantization: 'F32', license: 'MIT', contextLength: 4096, bytes: model.length, webLlm: [] };
    const catalog = [
      { ...entry, name: 'tiny-test', label: 'Tiny test model', url: files.url, sha256 },
      { ...entry, name: 'tiny-wrong', label: 'Tiny model with a wrong checksum', url: `${files.url}?wrong`, sha256: '0'.repeat(64) },
    ];
    const file = path.join(dir, 'catalog.json');
    await writeFile(file, JSON.stringify(catalog));
    rig = await startUi(devices[0], 'catalog', { relayArgs: ['--catalog', file] });
    ({ page } = rig);
  });

  afterAll(async () => {
    await rig?.close();
    files?.server.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const entry = (name: string) => page.locator(`[data-testid="catalog-model"][data-name="${name}"]`);

  test('a catalog model is downloaded, checked and used in one click, and a session runs on it; a wrong checksum is refused', async () => {
    await rig.press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await entry('tiny-test').waitFor({ timeout: 60_000 });
    expect(await entry('tiny-test').textContent()).toMatch(/Tiny test model.*1M parameters · F32 · .* · 4,096-token context · MIT/);

    await rig.press(entry('tiny-wrong').getByRole('button', { name: /^Download/ }));
    await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code'), { timeout: 60_000 }).toBe('model/checksum-mismatch');
    // The notice's long hash wraps: its close button stays on screen.
    await rig.press(page.getByRole('button', { name: 'Dismiss error' }));
    await expect.poll(() => page.getByTestId('error-toast').count()).toBe(0);
    await expect.poll(() => entry('tiny-wrong').textContent()).not.toMatch(/stored/);

    await rig.press(entry('tiny-test').getByRole('button', { name: /^Download/ }));
    await entry('tiny-test').getByTestId('catalog-model-in-use').waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('model-in-use').textContent()).toContain('tiny-test');
    await rig.screen('catalog');

    await rig.press(page.getByRole('link', { name: 'Sessions', exact: true }));
    await rig.press(page.getByLabel(/Assistant/));
    await page.getByLabel(/^Title/).fill('On the catalog model');
    await rig.press(page.getByRole('button', { name: 'Create session' }));
    await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await rig.transcriptReady();
    const box = page.getByLabel('Message');
    await box.fill('Hello, catalog model.');
    await box.press('Enter');
    await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 120_000 }).toBe(1);
    // The transcript names the model by its catalog name (the engine records its SHA-256).
    expect(await page.getByTestId('agent-message').textContent()).toContain('wllama · tiny-test ·');
    expect(await page.getByTestId('error-toast').count()).toBe(0);
    expect(rig.pageErrors).toEqual([]);
  });
});
