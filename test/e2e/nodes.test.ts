/**
 * Devices as nodes (issue 8), for real: `ferry start` with a generated model (its embedded cloud worker) and two
 * fresh Chromium profiles opening the PWA. The first shows its pairing link in Settings; the second opens it and
 * joins the space; both offer themselves as nodes (each loads the relay's model into its own wllama engine and
 * measures it). The relay lists them only to their space. A run placed on "my devices" runs in a browser — tokens
 * from wllama in Chromium, checkpoints published — and when that browser's tab goes away mid-generation, the relay
 * hands the run to the other device, which finishes it: nothing acknowledged is lost, the cloud never sees it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import * as v from 'valibot';
import type { Page } from 'playwright-core';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import {
  RelayHttp,
  RunMessageSchema,
  RunRecordSchema,
  SPACE_HEADER,
  WorkerListSchema,
  fetchSnapshot,
  parsePairingLink,
  publishSession,
  spaceIdOf,
  toBase64Url,
  workerPaths,
  type PublishResult,
  type RunMessage,
  type RunPlacement,
} from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { openComponentLibrary } from '../../server/relay/component-library.ts';
import { createNodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const componentsDir = path.join(root, 'components', 'dist');
/** Long enough that closing the tab lands mid-generation (the tiny model never emits EOS). */
const MAX_TOKENS = 3000;

interface Device {
  browser: FreshBrowser;
  page: Page;
}

async function openDevice(relay: string): Promise<Device> {
  const browser = await launchFreshChromium();
  const page = await browser.context.newPage();
  await page.goto(relay);
  await page.locator('html[data-ready="true"]').waitFor();
  // The relay's model, downloaded into this profile's cache.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
  await page.getByTestId('relay-models').getByRole('button', { name: /^Use / }).click();
  await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
  return { browser, page };
}

async function offer(device: Device): Promise<void> {
  const { page } = device;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
  await page.getByTestId('offer-node').click();
  await expect.poll(() => page.getByTestId('node-status').textContent({ timeout: 100 }).catch(() => ''), { timeout: 60_000 }).toMatch(/Offering this device as a node · decode \d+ tok\/s/);
  expect(await page.getByTestId('offer-node').getAttribute('aria-pressed')).toBe('true');
}

describe('browsers as nodes of a space', () => {
  let relay: RelayProcess;
  let work: string;
  let model: string;
  const devices: Device[] = [];
  let space: string;

  beforeAll(async () => {
    if (!existsSync(path.join(root, 'dist', 'index.html'))) throw new Error('dist/ has no build: run `npm run build` first.');
    work = await mkdtemp(path.join(os.tmpdir(), 'ferry-nodes-'));
    model = path.join(work, 'tiny.gguf');
    await writeFile(model, generateTinyModel({ ctx: 4096 }));
    relay = await startRelayProcess(['--data', path.join(work, 'data'), '--model', model]);
    devices.push(await openDevice(relay.url), await openDevice(relay.url));
  }, 240_000);

  afterAll(async () => {
    for (const d of devices) await d.browser.close().catch(() => undefined);
    await relay?.stop();
    await rm(work, { recursive: true, force: true });
  });

  const list = async (spaceId?: string) =>
    v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list, { headers: spaceId ? { [SPACE_HEADER]: spaceId } : {} })).json()).workers;

  test('a pairing link joins the second device to the first one\'s space; both offer themselves; the relay lists them only to that space', async () => {
    const [phone, laptop] = devices as [Device, Device];
    await phone.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
    await phone.page.getByTestId('show-pairing').click();
    const link = await phone.page.getByTestId('pairing-link').inputValue();
    const { secret, relay: origin } = parsePairingLink(link);
    expect(origin).toBe(new URL(relay.url).origin);
    space = await spaceIdOf(secret);

    await laptop.page.goto(link);
    await laptop.page.getByTestId('space-joined').waitFor();
    // The secret is gone from the address (and its history entry).
    expect(laptop.page.url()).not.toContain(secret);
    await offer(phone);
    await offer(laptop);

    const listed = await list(space);
    expect(listed.filter((w) => w.kind === 'device')).toHaveLength(2);
    for (const w of listed.filter((n) => n.kind === 'device')) {
      expect(w.profile).toMatchObject({ engine: 'wllama', slots: 1 });
      expect(w.profile.decodeTps).toBeGreaterThan(0);
    }
    expect((await list()).map((w) => w.kind)).toEqual(['cloud']);
    await expect.poll(async () => (await phone.page.getByTestId('space-peers').locator('li').count().catch(() => 0)), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
  });

  test('a run on "my devices" runs in a browser; closing that tab mid-generation hands it to the other device, which finishes it', async () => {
    // A session made here (node-llama-cpp on the same model file and the app's own component builds), published.
    const library = await openComponentLibrary([componentsDir]);
    const ids = Object.fromEntries([...library.ids].map(([id, dir]) => [path.basename(dir), id]));
    const engine = await createNodeLlamaEngine({ modelPath: model, gpu: false, threads: 1, slots: 1, contextSize: 4096 });
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, { engine, load: (id) => library.load(id), sampling: { maxTokens: MAX_TOKENS, temperature: 0, seed: 0 } }, { agent: ids.assistant!, tools: [ids.notes!] });
    const sessionId = runtime.session.id;
    await runtime.dispose();
    await engine.dispose();
    const http = new RelayHttp({ baseUrl: relay.url });
    const published: PublishResult = await publishSession(store, sessionId, http);

    const where: RunPlacement = { space, cloud: false };
    const res = await fetch(`${relay.url}/api/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'user', text: 'Tell me about the harbour.' }, where }),
    });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());

    const events: RunMessage[] = [];
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/api/v1/runs/${run.id}/events`);
    ws.on('message', (data) => events.push(v.parse(RunMessageSchema, JSON.parse(String(data)))));
    const ended = new Promise<void>((resolve) => ws.once('close', () => resolve()));

    // Tokens stream from the browser that got it; which one is up to the dispatcher.
    await expect.poll(() => events.filter((m) => m.event.type === 'token').length, { timeout: 60_000, interval: 20 }).toBeGreaterThan(20);
    const nodes = (await list(space)).filter((w) => w.kind === 'device');
    const runner = nodes.find((w) => w.runs === 1)!;
    expect(runner).toBeDefined();
    const runnerIndex = await whichDevice(runner.profile.name);
    await devices[runnerIndex]!.browser.close();

    await ended;
    const record = v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v1/runs/${run.id}`)).json());
    expect(record.status).toBe('idle');
    const types = events.map((m) => m.event.type);
    expect(types).toContain('worker-lost');
    const moved = events.find((m) => m.event.type === 'reassigned')!.event;
    expect(moved.name).not.toBe(runner.profile.name);
    expect(types.indexOf('reassigned')).toBeLessThan(types.lastIndexOf('checkpoint'));
    // The cloud worker never had it; the other browser finished and published it.
    expect((await list(space)).find((w) => w.kind === 'cloud')!.runs).toBe(0);
    const fetched = createMemoryStore();
    await fetchSnapshot(http, published.snapshot.id, published.key, fetched);
    const session = await Session.open(fetched, sessionId);
    const head = await session.checkpoint(await session.head());
    expect(head.counters.steps).toBeGreaterThanOrEqual(1);
    expect(head.counters.tokens).toBeGreaterThan(0);
    ws.close();

    async function whichDevice(name: string): Promise<number> {
      for (const [i, d] of devices.entries()) {
        const status = await d.page.getByTestId('node-status').textContent();
        if (status?.includes('1 run here')) return i;
      }
      throw new Error(`no device shows the run (${name})`);
    }
  });
});
