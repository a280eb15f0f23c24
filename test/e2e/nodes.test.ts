/**
 * Devices as nodes (issue 8), for real: `ferry start` with a generated model (its embedded cloud worker) and two
 * fresh Chromium profiles opening the PWA. The first shows its pairing link in Settings; the second opens it and
 * joins the space; both offer themselves as nodes (each loads the relay's model into its own wllama engine and
 * measures it). The relay lists them only to their space. A run placed on "my devices" runs in a browser — tokens
 * from wllama in Chromium, checkpoints published — and when that browser's tab goes away mid-generation, the relay
 * hands the run to the other device, which finishes it: nothing acknowledged is lost, the cloud never sees it.
 * And context parallelism across the three nodes — two browsers and the cloud worker: a survey over 12 generated
 * sources whose children run as child sessions on them; one browser's tab is closed mid-job, its children are
 * requeued and finish elsewhere, and the merged result holds every part. And automatic placement: a session
 * chatting on the phone ("my devices" allowed: the laptop, and the relay's own unpriced cloud worker) whose phone
 * is slowed mid-generation (Ferry's CPU share cut to 5%) moves by itself to the node the policy picks, and the
 * reply goes on streaming to the phone until it is complete. A session moved by hand to the laptop comes back to the
 * phone when the laptop's tab closes mid-reply, and its message is offered again.
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
  SPACE_HEADER,
  WorkerListSchema,
  fetchSnapshot,
  parsePairingLink,
  publishSession,
  spaceIdOf,
  startSealedRun,
  workerPaths,
  type OpenRunMessage,
  type PublishResult,
  type RunPlacement,
} from '../../src/core/protocol/index.ts';
import { followRun, type StreamSocket } from '../../src/core/parallel/index.ts';
import type { ChildProgress } from '../../src/core/runtime/index.ts';
import { AgentRuntime, type RuntimeEvent } from '../../src/core/runtime/runtime.ts';
import { generatedSources, surveyComponents, surveyParentSetup } from '../unit/parallel/space-nodes.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { openComponentLibrary } from '../../server/relay/component-library.ts';
import { createNodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';
import { describeOnFailure, describePage } from '../support/failure-report.ts';
import { pressMoveToCloud } from './ui-harness.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const componentsDir = path.join(root, 'components', 'dist');
/** Long enough that closing the tab lands mid-generation (the tiny model never emits EOS). */
const MAX_TOKENS = 3000;

interface Device {
  browser: FreshBrowser;
  page: Page;
}

/** What the devices' pages logged (warnings and errors), for a failed test's report. */
const consoleLines: string[] = [];
function listen(page: Page, who: string): Page {
  page.on('console', (m) => void (m.type() === 'error' || m.type() === 'warning' ? consoleLines.push(`${who} ${m.type()}: ${m.text()}`) : undefined));
  page.on('pageerror', (e) => void consoleLines.push(`${who} pageerror: ${e.message}`));
  return page;
}

async function openDevice(relay: string): Promise<Device> {
  const browser = await launchFreshChromium();
  const page = listen(await browser.context.newPage(), 'device');
  await page.goto(relay);
  await page.locator('html[data-ready="true"]').waitFor();
  // The relay's model, downloaded into this profile's cache (the list comes once the relay's own model has loaded).
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
  await page.getByTestId('relay-models').getByRole('button', { name: /^Use / }).click({ timeout: 90_000 });
  await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
  return { browser, page };
}

async function offer(device: Device): Promise<string> {
  const { page } = device;
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
  await page.getByTestId('offer-node').click();
  await expect.poll(() => page.getByTestId('node-status').textContent({ timeout: 100 }).catch(() => ''), { timeout: 60_000 }).toMatch(/Offering this device as a node · decode \d+ tok\/s/);
  // The status can read "Offering" a moment before the start resolves and the button turns pressed.
  await expect.poll(() => page.getByTestId('offer-node').getAttribute('aria-pressed'), { timeout: 10_000 }).toBe('true');
  return (await page.getByTestId('node-status').getAttribute('data-node-id'))!;
}

/**
 * Waits until a session moved by hand runs on `label` and its move has settled: the move's own run (which resumes
 * the session there) has ended, so the composer takes a message (Enter while a run goes on sends nothing).
 */
async function moved(page: Page, label: string, toast: string): Promise<void> {
  await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe(label);
  await expect.poll(() => page.getByTestId('toast').allTextContents().then((t) => t.join(' ')), { timeout: 30_000 }).toContain(toast);
  await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 30_000 }).toBe('false');
}

/** Settings on the phone: `change` fills the form, which is then saved. */
async function saveSettings(page: Page, change: () => Promise<void>): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
  await change();
  await page.getByRole('button', { name: 'Save settings' }).click();
  await page.getByText('Settings saved.').waitFor();
}

/** A new session of `template` (its label on the Sessions screen), open on its screen. */
async function createSession(page: Page, template: RegExp): Promise<void> {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sessions', exact: true }).click();
  await page.getByLabel(template).check();
  await page.getByRole('button', { name: 'Create session' }).click();
  await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
}

async function bringBack(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Bring back to this device' }).click();
  await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device');
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

  // A failed test says what each page showed and what the relay listed: the tests build on each other.
  let forget: (() => void) | undefined;
  beforeAll(() => {
    forget = describeOnFailure(async () => {
      const pages = await Promise.all(devices.map((d, i) => describePage(d.page, `device ${i}`)));
      const boxes = await Promise.all(devices.map((d) => (d.page.isClosed() ? '' : d.page.getByLabel('Message').inputValue({ timeout: 200 }).catch(() => '(no message box)'))));
      return `${pages.join('\n\n')}\n\nmessage boxes: ${JSON.stringify(boxes)}\n\npages logged:\n${consoleLines.slice(-30).join('\n')}\n\nrelay lists: ${JSON.stringify(await list(space).catch((e: unknown) => String(e)))}\n\nrelay output:\n${relay.output().slice(-3000)}`;
    });
  });
  afterAll(() => forget?.());

  const nodeIds: string[] = [];
  const list = async (spaceId?: string) =>
    v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list, { headers: spaceId ? { [SPACE_HEADER]: spaceId } : {} })).json()).workers;
  /** The name a node of the space shows (its profile's). */
  const nameOf = async (id: string) => (await list(space)).find((w) => w.id === id)!.profile.name;

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
    nodeIds.push(await offer(phone), await offer(laptop));

    const listed = await list(space);
    expect(listed.filter((w) => w.kind === 'device')).toHaveLength(2);
    for (const w of listed.filter((n) => n.kind === 'device')) {
      expect(w.profile).toMatchObject({ engine: 'wllama', slots: 1 });
      expect(w.profile.decodeTps).toBeGreaterThan(0);
    }
    expect((await list()).map((w) => w.kind)).toEqual(['cloud']);
    await expect.poll(async () => (await phone.page.getByTestId('space-peers').locator('li').count().catch(() => 0)), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
  });

  test('a survey over 12 sources: its children run across the browsers and the cloud worker; a tab closed mid-job loses nothing', async () => {
    const namesBefore = await Promise.all(nodeIds.map(nameOf));
    const parts = await surveyComponents();
    const engine = await createNodeLlamaEngine({ modelPath: model, gpu: false, threads: 1, slots: 1, contextSize: 4096 });
    const progress: ChildProgress[] = [];
    let closed: Promise<void> | undefined;
    /** The browser whose tab is closed: the first to publish a child checkpoint (the plan follows measured speed). */
    let victim = -1;
    const setup = surveyParentSetup({
      engine,
      library: parts.library,
      relayUrl: relay.url,
      space,
      sampling: { maxTokens: 48, temperature: 0, seed: 0 },
      onProgress: (p) => {
        progress.push(p);
        // A browser's first child checkpoint: its tab is closed there, mid-job.
        if (closed || p.type !== 'child-checkpoint' || !nodeIds.includes(p.node)) return;
        victim = nodeIds.indexOf(p.node);
        closed = devices[victim]!.page.close();
      },
    });
    const parent = await AgentRuntime.create(createMemoryStore(), setup, { agent: parts.survey, tools: [parts.docs, parts.notes] });
    const events: RuntimeEvent[] = [];
    for await (const e of parent.run({ type: 'start', task: JSON.stringify({ topic: 'working harbours', sources: generatedSources(12) }) })) events.push(e);
    await parent.dispose();
    await engine.dispose();
    await closed;

    const children = events.find((e): e is Extract<RuntimeEvent, { type: 'children' }> => e.type === 'children');
    expect(children, JSON.stringify(events.filter((e) => e.type === 'step-failed'))).toBeDefined();
    expect(children!.results.map((r) => r.id)).toEqual(Array.from({ length: 12 }, (_, i) => `source-${i + 1}`));
    for (const r of children!.results) expect(r.ok, `${r.id}: ${r.output}`).toBe(true);
    const done = progress.filter((p): p is Extract<ChildProgress, { type: 'child-done' }> => p.type === 'child-done');
    expect(done.map((d) => d.child).sort()).toEqual(children!.results.map((r) => r.id).sort());
    // The job was split (in proportion to measured speed) over more than one node, a browser among them.
    const ran = new Set(progress.filter((p) => p.type === 'child-start').map((p) => (p as { node: string }).node));
    expect(ran.size).toBeGreaterThan(1);
    expect(closed, 'no child published a checkpoint in a browser').toBeDefined();
    // The closed tab's unfinished children went back to the pool and finished elsewhere.
    const gone = nodeIds[victim]!;
    const requeued = progress.filter((p) => p.type === 'child-requeued' && p.node === gone).map((p) => (p as { child: string }).child);
    expect(requeued.length).toBeGreaterThan(0);
    for (const child of requeued) expect(done.find((d) => d.child === child)!.node).not.toBe(gone);

    // The tab comes back (same profile: its model, its space) and offers itself again.
    const { browser } = devices[victim]!;
    const page = await browser.context.newPage();
    await page.goto(relay.url);
    await page.locator('html[data-ready="true"]').waitFor();
    devices[victim] = { browser, page };
    nodeIds[victim] = await offer(devices[victim]!);
    // The other device's list of the space's devices follows, while its Settings stay open: the tab that went is
    // gone from it, the one that came back is there.
    const back = await nameOf(nodeIds[victim]!);
    const peers = () => devices[1 - victim]!.page.getByTestId('space-peers').textContent({ timeout: 100 }).catch(() => '');
    await expect.poll(peers, { timeout: 15_000 }).toContain(back);
    expect(await peers()).not.toContain(namesBefore[victim]!);
  });

  test('a session slowed mid-generation on the phone moves by itself to a faster node, and its stream goes on', async () => {
    const { page } = devices[0]!;
    const main = page.getByRole('navigation', { name: 'Main' });
    // Settings: "my devices" may run it; replies long enough to be slowed in the middle.
    await saveSettings(page, async () => {
      await page.getByLabel('My devices').check();
      await page.getByLabel('Reply length (tokens)').fill('2000');
    });

    await createSession(page, /Assistant/);
    const sessionUrl = page.url();
    const box = page.getByLabel('Message');
    await box.fill('Tell me the whole story of the harbour.');
    await box.press('Enter');
    const live = () => page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => '').then((t) => (t ?? '').length);
    await expect.poll(live, { timeout: 60_000, interval: 20 }).toBeGreaterThan(40);

    // The phone slows down mid-reply: Ferry may use 5% of its CPU from the next token on.
    await main.getByRole('link', { name: 'Settings' }).click();
    await page.getByTestId('cpu-share').fill('5');
    await page.goto(sessionUrl);
    // It moves by itself, off the phone, and says where and why.
    await expect.poll(() => page.getByTestId('toast').allTextContents().then((t) => t.join(' ')), { timeout: 60_000 }).toMatch(/Moved to /);
    const reason = (await page.getByTestId('toast').allTextContents()).find((t) => t.includes('Moved to '))!;
    const busy = async () => (await list(space)).filter((w) => w.runs > 0);
    await expect.poll(async () => (await busy()).length, { timeout: 30_000 }).toBe(1);
    const target = (await busy())[0]!;
    expect(target.id).not.toBe(nodeIds[0]);
    expect(reason).toContain(target.profile.name);
    console.log(`phone: ${reason}`);
    // The session says where it is now: the device by its name, or the cloud worker.
    await expect.poll(() => page.getByTestId('runs-on').textContent()).toBe(target.kind === 'device' ? target.profile.name : 'Cloud worker');
    // The reply keeps streaming to the phone from there, and ends complete.
    const before = await live();
    await expect.poll(live, { timeout: 60_000, interval: 50 }).toBeGreaterThan(before);
    await expect.poll(async () => (await busy()).length, { timeout: 120_000 }).toBe(0);
    // The transcript (the other node's checkpoints, synced to the phone): the part cut here and the part written
    // there are one reply, of exactly the reply length, by the engines that wrote it.
    const reply = page.getByTestId('agent-message').filter({ hasText: 'cut at the length limit' });
    await expect.poll(() => reply.count(), { timeout: 30_000 }).toBe(1);
    expect(await page.getByTestId('agent-message').count()).toBe(1);
    const text = (await reply.textContent()) ?? '';
    expect(text).toMatch(target.kind === 'device' ? /· wllama · / : /· wllama → node-llama-cpp · /);
    expect(Number(/· ([\d,]+) tokens/.exec(text)![1]!.replace(/,/g, ''))).toBe(2000);
    // "Where it runs" lists the laptop among this device's other devices.
    await page.getByTestId('where-it-runs').locator('summary').click();
    // It says where the session is now, not what the policy would do with it from here.
    await expect.poll(() => page.getByTestId('placement-reason').textContent({ timeout: 100 }).catch(() => ''), { timeout: 30_000 }).toMatch(/^Runs on .+\. Automatic placement decides only for sessions on this device/);
    const laptopName = await nameOf(nodeIds[1]!);
    await expect.poll(() => page.getByTestId('space-device').allTextContents().then((t) => t.join(' ')), { timeout: 30_000 }).toContain(laptopName);
    // Back to this device, and to full speed, for what follows.
    await bringBack(page);
    await main.getByRole('link', { name: 'Settings' }).click();
    await page.getByTestId('cpu-share').fill('100');
  });

  test('a survey on the phone under "my devices" runs its parts on the laptop and the relay\'s own worker, with a progress bar, then goes on on the phone', async () => {
    const { page } = devices[0]!;
    const main = page.getByRole('navigation', { name: 'Main' });
    // Still "my devices" from the test before; short replies.
    await saveSettings(page, () => page.getByLabel('Reply length (tokens)').fill('32'));
    const [phoneName, laptopName] = await Promise.all(nodeIds.map(nameOf));

    await createSession(page, /Survey/);
    const box = page.getByLabel('Message');
    await box.fill(JSON.stringify({ topic: 'working harbours', sources: generatedSources(4) }));
    await box.press('Enter');

    // The parts go to the laptop and to the relay's own worker (it charges nothing: "my devices" counts it), not to
    // the phone: its one slot is its own session's.
    const progress = () => page.getByTestId('live-children-done').textContent({ timeout: 50 }).catch(() => '');
    await expect.poll(progress, { timeout: 120_000, interval: 50 }).toMatch(/^Parts: [0-3] of 4 done/);
    const partNodes = await page.getByTestId('live-child-node').allTextContents();
    expect(partNodes).toHaveLength(2);
    expect(partNodes.filter((line) => line.startsWith(`${laptopName} (device)`))).toHaveLength(1);
    expect(partNodes.filter((line) => line.includes('(cloud worker)'))).toHaveLength(1);
    expect(partNodes.join(' ')).not.toContain(phoneName);
    expect(await page.locator('[data-testid="live-children"] progress').getAttribute('max')).toBe('4');
    // Then the parent goes on here with their notes (the tiny model's do not parse, so it ends saying that no source
    // could be read), and the run ends.
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 180_000 }).toBe('false');
    // The agent's reply is in the transcript (a checkpointed event, not only a live one).
    await expect.poll(() => page.getByTestId('agent-reply').allTextContents(), { timeout: 30_000 }).toEqual([expect.stringContaining('No source could be read, so there is nothing to survey.')]);
    const sessionId = /#\/s\/([0-9a-f]{32})$/.exec(page.url())![1]!;
    await main.getByRole('link', { name: 'Sessions', exact: true }).click();
    // Its steps, checkpointed: the task (adding the four sources), one per source added (the last forks the
    // children), and the one that takes their notes.
    const steps = async () => Number(/· (\d+) steps?/.exec((await page.locator(`[data-testid="session-row"][data-session-id="${sessionId}"]`).textContent({ timeout: 1000 }).catch(() => '')) ?? '')?.[1] ?? 0);
    await expect.poll(steps, { timeout: 30_000 }).toBeGreaterThanOrEqual(6);
    expect((await list(space)).find((w) => w.id === nodeIds[1])!.runs).toBe(0);
    // The laptop says so too, once its part's run has ended.
    await expect.poll(() => devices[1]!.page.getByTestId('node-status').textContent(), { timeout: 10_000 }).toContain('· 0 runs here');
    // The node status is on Settings, for the test after this one.
    await main.getByRole('link', { name: 'Settings' }).click();
  }, 300_000);

  test('a survey moved by hand to the cloud worker still splits its parts across the space from there', async () => {
    const { page } = devices[0]!;
    const main = page.getByRole('navigation', { name: 'Main' });
    // Still "my devices" with short replies; the relay's own unpriced worker is one of them.
    await createSession(page, /Survey/);
    await page.getByTestId('where-it-runs').locator('summary').click();
    await pressMoveToCloud(page);
    await moved(page, 'Cloud worker', 'The session moved to the cloud worker.');
    const box = page.getByLabel('Message');
    await box.fill(JSON.stringify({ topic: 'ferry crossings', sources: generatedSources(4) }));
    await box.press('Enter');

    // The run on the cloud worker splits the parts over the nodes of the space as the phone would have, not one by
    // one there: both devices (the phone is free now: its session is away) and the worker's own other slots.
    const progress = () => page.getByTestId('live-children-done').textContent({ timeout: 50 }).catch(() => '');
    await expect.poll(progress, { timeout: 120_000, interval: 50 }).toMatch(/^Parts: [0-4] of 4 done/);
    const deviceNames = await Promise.all(nodeIds.map(nameOf));
    const partNodes = await page.getByTestId('live-child-node').allTextContents();
    for (const name of deviceNames) expect(partNodes.filter((line) => line.startsWith(`${name} (device)`)), partNodes.join(' | ')).toHaveLength(1);
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 180_000 }).toBe('false');
    await expect.poll(() => page.getByTestId('agent-reply').allTextContents(), { timeout: 30_000 }).toEqual([expect.stringContaining('No source could be read')]);
    // Back to this device; the node status is on Settings, for the test after this one.
    await bringBack(page);
    await main.getByRole('link', { name: 'Settings' }).click();
  }, 300_000);

  test('a session moved by hand to the laptop comes back to the phone by itself when the laptop\'s tab closes mid-reply; its message is offered again', async () => {
    const { page } = devices[0]!;
    const main = page.getByRole('navigation', { name: 'Main' });
    await saveSettings(page, () => page.getByLabel('Reply length (tokens)').fill('600'));
    const laptopName = await nameOf(nodeIds[1]!);

    await createSession(page, /Assistant/);
    await page.getByTestId('where-it-runs').locator('summary').click();
    await page.getByRole('button', { name: `Move to ${laptopName}` }).click();
    await moved(page, laptopName, `The session moved to ${laptopName}.`);
    const box = page.getByLabel('Message');
    await box.fill('Tell me about the lighthouse.');
    await box.press('Enter');
    const live = () => page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => '').then((t) => (t ?? '').length);
    await expect.poll(live, { timeout: 60_000, interval: 20 }).toBeGreaterThan(40);

    // The laptop's tab closes mid-reply. Pinned there, the run is not handed on: the session comes back to the phone
    // from its last checkpoint (the session as it was: the cut step never was), says so, and offers the message again.
    await devices[1]!.page.close();
    await expect.poll(() => page.getByTestId('toast').allTextContents().then((t) => t.join(' ')), { timeout: 60_000 }).toContain(`${laptopName} running this session left, so it came back to this device`);
    await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('This device');
    expect(await page.getByTestId('agent-message').count()).toBe(0);
    await page.getByTestId('unsent-message').getByRole('button', { name: 'Send again' }).click();
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 10_000 }).toBe('true');
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 180_000 }).toBe('false');
    await expect.poll(() => page.getByTestId('agent-message').allTextContents(), { timeout: 30_000 }).toEqual([expect.stringMatching(/· wllama · .* · 600 tokens · cut at the length limit/)]);
    expect(await page.getByTestId('unsent-message').count()).toBe(0);

    // The laptop's tab comes back and offers itself again, and the phone shows its node status on Settings, for the
    // test after this one.
    await main.getByRole('link', { name: 'Settings' }).click();
    const { browser } = devices[1]!;
    const laptop = await browser.context.newPage();
    await laptop.goto(relay.url);
    await laptop.locator('html[data-ready="true"]').waitFor();
    devices[1] = { browser, page: laptop };
    nodeIds[1] = await offer(devices[1]!);
  }, 300_000);

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
    // Sealed to the space's devices as the app does it: the key, the input, the events.
    const run = await startSealedRun(http, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input: { type: 'user', text: 'Tell me about the harbour.' }, where });

    const events: OpenRunMessage[] = [];
    const ended = followRun(http, run.id, (m) => events.push(m), { key: published.key, open: (url, protocols) => new WebSocket(url, protocols) as unknown as StreamSocket });

    // Tokens stream from the browser that got it; which one is up to the dispatcher.
    await expect.poll(() => events.filter((m) => m.event.type === 'token').length, { timeout: 60_000, interval: 20 }).toBeGreaterThan(20);
    const nodes = (await list(space)).filter((w) => w.kind === 'device');
    const runner = nodes.find((w) => w.runs === 1)!;
    expect(runner).toBeDefined();
    const runnerIndex = await whichDevice(runner.profile.name);
    await devices[runnerIndex]!.browser.close();

    const record = await ended;
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

    async function whichDevice(name: string): Promise<number> {
      for (const [i, d] of devices.entries()) {
        const status = await d.page.getByTestId('node-status').textContent();
        if (status?.includes('1 run here')) return i;
      }
      throw new Error(`no device shows the run (${name})`);
    }
  });
});
