/**
 * The PWA as a person uses it, in Debian's Chromium against the built app served by `ferry start`, on a phone
 * (360×780, touch) and a desktop (1280×800): choosing the relay's model, sessions whose agent runs in the page's
 * agent worker (wllama, the generated model) with streaming replies, the checkpoint tree, .ferry files, settings,
 * moving a session to the relay's cloud worker and back mid-stream, running it here verified by the cloud worker,
 * offline.
 * Every screen is screenshot into test-results/ui/ and checked with axe-core (no serious or critical violation).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import type { FreshBrowser } from '../support/browser.ts';
import type { RelayProcess } from '../support/relay-process.ts';
import { devices, pressMoveToCloud, startUi, type UiRig } from './ui-harness.ts';

for (const device of devices) {
  describe(`the Ferry UI on a ${device.name}`, () => {
    let rig: UiRig;
    let relay: RelayProcess;
    let browser: FreshBrowser;
    let page: Page;
    let work: string;
    const press = (l: Locator): Promise<void> => rig.press(l);
    /** How the transcript names the model: by its name, whether the relay's (phone) or a file picked from disk (desktop). */
    const MODEL = 'tiny\\.gguf';
    const screen = (name: string): Promise<void> => rig.screen(name);
    const transcriptReady = (): Promise<void> => rig.transcriptReady();

    beforeAll(async () => {
      rig = await startUi(device, 'ui');
      ({ relay, browser, page, work } = rig);
    });

    afterAll(() => rig?.close());

    /** `notice` is shown, and its box meets none of `controls`' (each visible first). */
    async function expectClear(notice: Locator, controls: Locator[]): Promise<void> {
      const box = await notice.boundingBox({ timeout: 30_000 });
      expect(box).not.toBeNull();
      for (const control of controls) {
        const c = await control.boundingBox({ timeout: 30_000 });
        expect(c).not.toBeNull();
        const meets = box!.x < c!.x + c!.width && c!.x < box!.x + box!.width && box!.y < c!.y + c!.height && c!.y < box!.y + box!.height;
        expect(meets, `the notice ${JSON.stringify(box)} meets ${control.toString()} at ${JSON.stringify(c)}`).toBe(false);
      }
    }

    /** Types a message and sends it with Enter. */
    /** Where a control is and whether it can be pressed, with the page's scroll: what a failed press is reported with. */
    async function layout(control: Locator): Promise<string> {
      const box = await control.boundingBox({ timeout: 1000 }).catch(() => null);
      const enabled = await control.isEnabled({ timeout: 1000 }).catch(() => 'gone');
      const page = await control.page().evaluate(() => `scrollY ${Math.round(scrollY)} of ${document.documentElement.scrollHeight} (viewport ${innerHeight})`);
      return `box ${JSON.stringify(box)}, enabled ${String(enabled)}, ${page}`;
    }

    /** This site's relay, and "My devices": the cloud worker on the user's own relay may take sessions. */
    async function useMyDevices(replyTokens?: number): Promise<void> {
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await page.getByLabel('Relay URL').fill('');
      await press(page.getByLabel('My devices'));
      if (replyTokens !== undefined) await page.getByLabel('Reply length (tokens)').fill(String(replyTokens));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
    }

    async function send(text: string): Promise<void> {
      const box = page.getByLabel('Message');
      await box.fill(text);
      await box.press('Enter');
    }

    /** Creates a session of a template from the session list, and waits for its screen. */
    async function createSession(template: RegExp, title: string): Promise<void> {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(template));
      await page.getByLabel(/^Title/).fill(title);
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
    }

    /** Opens a session from the session list by its title. */
    async function openSession(title: string): Promise<void> {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByRole('link', { name: title, exact: true }));
      await transcriptReady();
    }

    /** Saves the engine's limits in Settings (the other settings as they are). */
    async function setLimits(replyTokens: number, contextSize: number): Promise<void> {
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await page.getByLabel('Reply length (tokens)').fill(String(replyTokens));
      await page.getByLabel('Context size (tokens)').fill(String(contextSize));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
    }

    /** Sends a message and waits for the agent's reply: tokens stream into the live reply, then its checkpoint shows it. */
    async function chat(text: string, replies: number): Promise<void> {
      const box = page.getByLabel('Message');
      await box.fill(text);
      await box.press('Enter');
      // The box empties once the message is stored on this device (it then shows as sent).
      await expect.poll(() => box.inputValue(), { timeout: 30_000 }).toBe('');
      await expect.poll(() => page.getByTestId('pending-user-message').or(page.getByTestId('user-message').filter({ hasText: text.split('\n')[0]! })).count()).toBeGreaterThan(0);
      // Streaming: the live reply grows token by token before the reply is checkpointed.
      const live = page.getByTestId('live-reply');
      const lengths: number[] = [];
      await expect
        .poll(async () => {
          const t = await live.textContent({ timeout: 50 }).catch(() => null);
          if (t !== null) lengths.push(t.length);
          return new Set(lengths.filter((n) => n > 30)).size >= 2 || (await page.getByTestId('agent-message').count()) >= replies;
        }, { timeout: 60_000, interval: 20 })
        .toBe(true);
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 60_000 }).toBe(replies);
      await expect.poll(() => page.getByTestId('live-turn').count()).toBe(0);
      expect(new Set(lengths).size, 'the reply streamed in several pieces').toBeGreaterThan(1);
    }

    test('starts with an empty session list, and says a model is needed', async () => {
      await expect.poll(() => page.getByTestId('no-sessions').isVisible()).toBe(true);
      expect(await page.getByTestId('no-model-hint').textContent()).toMatch(/choose a model/);
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code')).toBe('app/no-model');
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await screen('sessions-empty');
    });

    test('chooses a model on the Models screen (phone: the relay\'s, downloaded with a progress bar; desktop: the same GGUF picked from disk); a bad GGUF is refused', async () => {
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      // The relay answers its model list once its own model has loaded (a while, on a busy machine).
      await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
      expect(await page.getByTestId('model-in-use').textContent()).toMatch(/None yet/);
      const bad = path.join(work, 'not-a-model.gguf');
      await writeFile(bad, 'GGUF but not really');
      await page.getByTestId('pick-model').setInputFiles(bad);
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code'), { timeout: 60_000 }).toMatch(/^gguf\//);
      expect(await page.getByTestId('error-toast').textContent()).toMatch(/not a usable GGUF model/);
      await press(page.getByRole('button', { name: 'Dismiss error' }));

      if (device.name === 'phone') {
        await press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
        await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
        expect(await page.getByTestId('model-in-use').textContent()).toMatch(/from the relay/);
      } else {
        await page.getByTestId('pick-model').setInputFiles(path.join(work, 'tiny.gguf'));
        await expect.poll(() => page.getByTestId('model-in-use').textContent(), { timeout: 60_000 }).toMatch(/tiny\.gguf · .* · a file from this device/);
      }
      expect(await page.getByText(/\.gguf · .*(KB|MB)/).count()).toBeGreaterThan(0);
      await screen('models-in-use');
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
    });

    test('creates a session from a template and chats: the agent runs in the page, tokens stream, replies are checkpointed and survive a reload', async () => {
      await press(page.getByLabel(/Dev guide/));
      await page.getByLabel(/^Title/).fill('Trip plan');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      expect(await page.getByRole('heading', { level: 2 }).textContent()).toBe('Trip plan');
      await expect.poll(() => page.getByTestId('empty-transcript').isVisible()).toBe(true);
      expect(await page.getByTestId('composer-hint').textContent()).toMatch(/Replies come from .* on this device/);

      await chat('first **message**', 1);
      await screen('chat');
      await chat('second message\nwith two lines', 2);
      expect(await page.getByTestId('user-message').count()).toBe(2);
      expect(await page.getByTestId('user-message').nth(0).textContent()).toContain('first **message**');
      expect(await page.getByTestId('agent-message').nth(0).textContent()).toMatch(new RegExp(`Agent · wllama · ${MODEL} · \\d+ tokens`));

      // Stop: the generation in flight ends "stopped" and is checkpointed as it is.
      const box = page.getByLabel('Message');
      await box.fill('third message, stopped halfway');
      await box.press('Enter');
      await expect.poll(async () => ((await page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 20, { timeout: 60_000, interval: 10 }).toBe(true);
      await press(page.getByRole('button', { name: 'Stop' }));
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 60_000 }).toBe(3);
      expect(await page.getByTestId('agent-message').nth(2).textContent()).toMatch(/tokens · stopped/);
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running')).toBe('false');

      // Everything acknowledged is in IndexedDB: a reload shows the same conversation.
      const before = await page.getByTestId('transcript').textContent();
      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await transcriptReady();
      await expect.poll(() => page.getByTestId('agent-message').count()).toBe(3);
      expect(await page.getByTestId('transcript').textContent()).toBe(before);
    });

    test('shares the session: a link with the key only in its fragment, a QR code, and the same link when shared again', async () => {
      await press(page.getByRole('button', { name: 'Share' }));
      const link = page.getByTestId('share-link');
      await link.waitFor();
      const first = await link.inputValue();
      expect(first).toMatch(new RegExp(`^${relay.url}/s/[0-9a-f]{40}#k=[A-Za-z0-9_-]{43}$`));
      expect(await page.getByTestId('share-qr').locator('svg').count()).toBe(1);
      await screen('share');
      await press(page.getByTestId('share-dialog').getByRole('button', { name: 'Close' }));
      await press(page.getByRole('button', { name: 'Share' }));
      await link.waitFor();
      expect(await link.inputValue()).toBe(first);
      await press(page.getByTestId('share-dialog').getByRole('button', { name: 'Close' }));
      await expect.poll(() => page.getByTestId('share-dialog').isVisible()).toBe(false);
    });

    test('"Where it runs" shows this device\'s engine and why, the relay\'s cloud worker with speed, round trip and price, what the branch cost, and the placement reason', async () => {
      const panel = page.getByTestId('where-it-runs');
      await press(panel.locator('summary'));
      await page.getByTestId('placement-reason').waitFor();
      const device = await page.getByTestId('this-device').textContent();
      // Headless Chromium here has no usable WebGPU: the CPU engine, with the reason.
      expect(device).toContain('llama.cpp (CPU)');
      expect(device).toMatch(/Using llama.cpp on the CPU/);
      expect(device).toMatch(new RegExp(`Model\\s*${MODEL}`));
      const worker = page.getByTestId('cloud-worker');
      expect(await worker.count()).toBe(1);
      expect(await worker.textContent()).toMatch(/embedded in the relay.*node-llama-cpp.*\d[\d,.]* tok\/s generating.*round trip \d+ ms/s);
      // It sets no price; nothing of this session ran on a paid worker.
      expect(await page.getByTestId('worker-price').textContent()).toBe('Free: it charges nothing');
      expect(await page.getByTestId('spent').textContent()).toBe('This branch has cost nothing: no step ran on a paid worker.');
      // The default privacy (this device only) rules the cloud out, and the reason says so.
      // This device's speed is measured from the replies it generated, so the policy can decide, and says why.
      expect(device).toMatch(/Speed\s*[\d,.]+ tok\/s/);
      expect(await page.getByTestId('placement-reason').textContent()).toBe('Stays on this device: your privacy setting (this device only) keeps sessions here.');
      await screen('where-it-runs');
      await press(panel.locator('summary'));
    });

    test('rolls back from the tree, undoes it, forks and compares branches', async () => {
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      // Root, and the agent's checkpoints of two turns (each turn at least the message with its reply).
      await expect.poll(() => page.getByTestId('tree-node').count()).toBeGreaterThanOrEqual(3);
      const nodes = await page.getByTestId('tree-node').count();
      const head = await page.getByTestId('tree-node').filter({ hasText: '(head)' }).textContent();
      const firstNode = page.getByTestId('tree-node').filter({ hasText: 'You: first **message**' });
      await press(firstNode);
      await press(page.getByRole('button', { name: /Roll back .main. to here/ }));
      await expect.poll(() => page.getByTestId('tree-node').filter({ hasText: '(head)' }).textContent()).toContain('first **message**');
      await screen('tree-rolled-back');

      await press(page.getByRole('button', { name: /Undo the last rollback/ }));
      await expect.poll(() => page.getByTestId('tree-node').filter({ hasText: '(head)' }).textContent()).toBe(head);

      await press(firstNode);
      await page.getByLabel('New branch name').fill('alt');
      await press(page.getByRole('button', { name: 'Fork here' }));
      await expect.poll(() => page.getByTestId('current-branch').textContent()).toBe('alt');
      await expect.poll(() => page.getByTestId('branch').count()).toBe(2);

      await press(page.getByRole('link', { name: 'Chat' }));
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(1);
      // The agent continues from the forked checkpoint (the worker reopens the session at the new branch's head).
      const replies = await page.getByTestId('agent-message').count();
      await chat('a different second message', replies + 1);
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(2);

      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => page.getByTestId('tree-node').count()).toBeGreaterThan(nodes + 1);
      await page.getByLabel('Branch A').selectOption('main');
      await page.getByLabel('Branch B').selectOption('alt');
      await press(page.getByRole('button', { name: 'Compare' }));
      await expect.poll(() => page.getByTestId('compare-summary').textContent()).toMatch(/\d+ shared steps?; then \d+ only on “main” and \d+ only on “alt”/);
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
      await expect.poll(() => row.textContent(), { timeout: 30_000 }).toMatch(/\d+(\.\d)? (B|KB|MB)/);

      await press(page.getByRole('button', { name: 'Delete Trip plan' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(0);
      await press(page.getByRole('button', { name: 'Undo' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(1);

      await press(page.getByRole('button', { name: 'Delete Trip plan' }));
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(0);
      await page.getByTestId('import-input').setInputFiles(file);
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(3);
      expect(await page.getByTestId('current-branch').textContent()).toBe('main');
      expect(await page.getByRole('heading', { level: 2 }).textContent()).toBe('Trip plan');
      // The template comes back from the session's own agent component, not a guess.
      expect(await page.getByTestId('session-template').textContent()).toBe('Dev guide');

      const bad = path.join(work, 'broken.ferry');
      const bytes = await readFile(file);
      bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
      await writeFile(bad, bytes);
      await press(page.getByRole('link', { name: '← Sessions' }));
      await page.getByTestId('import-input').setInputFiles(bad);
      const error = page.getByTestId('error-toast');
      await expect.poll(() => error.getAttribute('data-code'), { timeout: 60_000 }).toMatch(/^snapshot\//);
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

    test('the Models screen says which engine this device uses and why, and lists the relay\'s model', async () => {
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await page.getByTestId('engine-choice').waitFor();
      expect(await page.getByTestId('engine-choice').textContent()).toMatch(/llama.cpp on the CPU — This device has no WebGPU.*Using llama.cpp on the CPU/);
      expect(await page.getByTestId('webllm-none').isVisible()).toBe(true);
      expect(await page.getByTestId('relay-models').textContent()).toMatch(/\.gguf · [0-9a-f]{12}… · node-llama-cpp · 4,096-token context/);
      expect(await page.getByTestId('storage-used').textContent()).toMatch(/This site uses .* of the .* the browser allows it/);
      await screen('models');
    });

    test('saves settings, which persist across a reload', async () => {
      await press(page.getByRole('link', { name: 'Settings' }));
      // What Ferry's sessions and models take of the browser's storage, and whether the browser keeps them.
      await expect.poll(() => page.getByTestId('storage-used').textContent(), { timeout: 30_000 }).toMatch(/^\s*Ferry uses [\d.]+ (B|KB|MB|GB) of the [\d.]+ (MB|GB) this browser allows it \([\d.]+%\)\.\s*$/);
      const kept = page.getByTestId('storage-kept');
      if (!/^\s*Kept/.test((await kept.textContent()) ?? '')) {
        await press(page.getByRole('button', { name: 'Ask the browser to keep it' }));
        await expect.poll(() => kept.textContent(), { timeout: 30_000 }).toMatch(/^\s*Kept|The browser declined for now/);
      }
      await page.getByLabel('Relay URL').fill('not a url');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code')).toBe('app/bad-relay-url');
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await page.getByLabel('Relay URL').fill('https://relay.example.org');
      await press(page.getByLabel('My devices'));
      // Balanced's price of time: shown while Balanced is chosen, checked, kept when another objective is chosen.
      expect(await page.getByLabel(/Value of your time/).inputValue()).toBe('10');
      await page.getByLabel(/Value of your time/).fill('0');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('error-toast').textContent()).toMatch(/"Value of your time" is invalid: it must be at least \$0\.01/);
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await page.getByLabel(/Value of your time/).fill('0.5');
      await press(page.getByLabel('Cheapest'));
      expect(await page.getByLabel(/Value of your time/).count()).toBe(0);
      await page.getByLabel(/Budget per step on paid workers/).fill('0.05');
      await press(page.getByLabel('Dark'));
      // The engine's limits: defaults shown, bad values refused with the field named.
      expect(await page.getByLabel('Reply length (tokens)').inputValue()).toBe('512');
      expect(await page.getByLabel('Context size (tokens)').inputValue()).toBe('4096');
      await page.getByLabel('Reply length (tokens)').fill('5');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('error-toast').textContent()).toMatch(/Reply length.*at least 16 tokens/);
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await page.getByLabel('Reply length (tokens)').fill('2048');
      await page.getByLabel('Context size (tokens)').fill('2048');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('error-toast').textContent()).toMatch(/reply length \(2048 tokens\) must be smaller than the context size/);
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      await page.getByLabel('Reply length (tokens)').fill('300');
      await page.getByLabel('Context size (tokens)').fill('3072');
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
      await press(page.getByLabel('Balanced'));
      expect(await page.getByLabel(/Value of your time/).inputValue()).toBe('0.5');
      expect(await page.getByLabel(/Budget per step on paid workers/).inputValue()).toBe('0.05');
      expect(await page.getByLabel('Dark').isChecked()).toBe(true);
      expect(await page.getByLabel('Reply length (tokens)').inputValue()).toBe('300');
      expect(await page.getByLabel('Context size (tokens)').inputValue()).toBe('3072');
      expect(await page.evaluate(() => document.documentElement.style.colorScheme)).toBe('dark');
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await page.getByTestId('session-list').waitFor();
      await screen('sessions-dark');
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await press(page.getByLabel('System'));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.evaluate(() => document.documentElement.style.colorScheme)).toBe('light dark');
      await setLimits(512, 4096);
    });

    test('the agent runs with the reply length and context size from Settings; an error belongs to its session and goes with its cause', async () => {
      await setLimits(48, 4096);
      await createSession(/Assistant/, 'Limits');
      await send('A short one, please.');
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 60_000 }).toBe(1);
      expect(await page.getByTestId('agent-message').textContent()).toMatch(/· 48 tokens · cut at the length limit/);

      // A context of 512 tokens cannot hold a long message: the engine refuses it, and the message is kept.
      await setLimits(256, 512);
      await openSession('Limits');
      const long = `Please read all of this: ${'the ferry crosses the harbour at dawn, '.repeat(40)}`;
      await send(long);
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code'), { timeout: 60_000 }).toBe('llm/context-full');
      expect(await page.getByTestId('error-toast').textContent()).toMatch(/the context holds 512/);
      // The notice covers no control: not the message box or Send, nor the tree's Roll back and Close.
      await expectClear(page.getByTestId('error-toast'), [page.getByLabel('Message'), page.getByRole('button', { name: 'Send', exact: true })]);
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await press(page.getByTestId('tree-node').first());
      await expectClear(page.getByTestId('error-toast'), [page.getByRole('button', { name: /^Roll back / }), page.getByRole('button', { name: 'Close', exact: true })]);
      await press(page.getByRole('button', { name: 'Close', exact: true }));
      await press(page.getByRole('link', { name: 'Chat' }));
      // The error belongs to this session: another session's screen does not show it; back here, it is there again.
      await openSession('Weekly show');
      expect(await page.getByTestId('error-toast').count()).toBe(0);
      await openSession('Limits');
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code'), { timeout: 30_000 }).toBe('llm/context-full');
      await expect.poll(() => page.getByTestId('unsent-message').textContent(), { timeout: 30_000 }).toContain('the ferry crosses the harbour');
      // Discarding the message it was about takes the error away with it.
      await press(page.getByTestId('unsent-message').getByRole('button', { name: 'Discard' }));
      await expect.poll(() => page.getByTestId('unsent-message').count(), { timeout: 30_000 }).toBe(0);
      expect(await page.getByTestId('error-toast').count()).toBe(0);
      await setLimits(512, 4096);
    });

    test('a message sent just before the tab crashes is not lost: a new tab offers it again, and "Send again" sends it', async () => {
      // A long reply, so the tab surely dies before it is done. The tab crashes rather than reloads: a reload waits for
      // the busy page, and a loaded CI machine once let the step finish and land in that time.
      await setLimits(2048, 4096);
      await openSession('Limits');
      const replies = await page.getByTestId('agent-message').count();
      await send('This one was sent before the crash.');
      await expect.poll(async () => ((await page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 20, { timeout: 60_000, interval: 10 }).toBe(true);
      // The tab dies mid-generation: the step that takes the message was never checkpointed.
      page = await rig.crashAndReopen();
      await transcriptReady();
      const unsent = page.getByTestId('unsent-message');
      const after = page.getByTestId('user-message').filter({ hasText: 'sent before the crash' }).or(unsent);
      await expect.poll(() => after.count()).toBeGreaterThan(0);
      // A failure says what the reopened tab shows instead.
      expect(await unsent.count(), `after the crash the transcript ends: ${(await page.getByTestId('transcript').textContent())?.slice(-400)}`).toBe(1);
      expect(await unsent.textContent()).toContain('This one was sent before the crash.');
      expect(await page.getByTestId('user-message').filter({ hasText: 'sent before the crash' }).count()).toBe(0);
      expect(await page.getByTestId('agent-message').count()).toBe(replies);
      await screen('unsent-after-crash');
      // Sent again, it needs no long reply: back to the usual limits, and to the session, which still offers it.
      await setLimits(512, 4096);
      await openSession('Limits');
      await expect.poll(() => unsent.textContent(), { timeout: 30_000 }).toContain('This one was sent before the crash.');
      await press(unsent.getByRole('button', { name: 'Send again' }));
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 60_000 }).toBe(replies + 1);
      await expect.poll(() => page.getByTestId('live-turn').count()).toBe(0);
      expect(await unsent.count()).toBe(0);
      // Landed: a reload shows it once, in the transcript, and no longer offers it.
      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').filter({ hasText: 'sent before the crash' }).count()).toBe(1);
      expect(await unsent.count()).toBe(0);
    });

    test('moves a session to the cloud worker mid-stream and brings it back, from the "Where it runs" panel', async () => {
      // A long reply: a greedy reply's move warms the cloud worker first while this device streams on (move-ahead.ts),
      // seconds on a busy machine, and the reply must still be streaming when the move cuts it.
      await useMyDevices(2000);
      await createSession(/Assistant/, 'Ferry story');
      const panel = page.getByTestId('where-it-runs');
      await press(panel.locator('summary'));
      await page.getByTestId('placement-reason').waitFor();
      // Nothing ran here yet: automatic placement has nothing to compare, and the panel does not claim a move.
      expect(await page.getByTestId('placement-reason').textContent()).toMatch(/^Stays on this device for now: automatic placement compares/);
      const move = page.getByRole('button', { name: 'Move to the cloud worker' });
      expect(await page.getByTestId('move-blocked').count()).toBe(0);
      expect(await move.isEnabled()).toBe(true);

      const box = page.getByLabel('Message');
      await box.fill('Tell me the whole story of the ferry and the harbour.');
      await box.press('Enter');
      const live = page.getByTestId('live-reply');
      await expect.poll(async () => (await live.getAttribute('data-where', { timeout: 50 }).catch(() => null)) === 'device' && ((await live.textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 40, { timeout: 60_000, interval: 10 }).toBe(true);
      const before = await layout(move);
      await press(move);
      // The live indicator, then the stream goes on from the cloud worker.
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 30_000, interval: 10 }).toMatch(/moving|Cloud worker/).catch(async (err: unknown) => {
        throw new Error(`Move did not start. Before the press: ${before}; now: ${await layout(move)}; toasts: ${JSON.stringify(await page.getByTestId('error-toast').allTextContents())}; console: ${[...rig.pageErrors, ...rig.consoleLog].slice(-8).join(' | ')}`, { cause: err });
      });
      await screen('moving');
      // The stream goes on from the cloud worker: live, or already checkpointed there and copied here.
      const fromCloud = page.getByTestId('agent-message').filter({ hasText: 'node-llama-cpp' });
      await expect.poll(() => page.getByTestId('live-reply').or(page.getByTestId('live-generation')).and(page.locator('[data-where="cloud"]')).or(fromCloud).count(), { timeout: 60_000 }).toBeGreaterThan(0);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      // The cloud's checkpoints are in this device's store as they are published: before any "Bring back".
      await expect.poll(() => fromCloud.count(), { timeout: 30_000 }).toBeGreaterThan(0);
      expect(await page.getByTestId('runs-on').textContent()).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('placement-reason').textContent(), { timeout: 30_000 }).toMatch(/^Runs on Cloud worker\. /);
      await screen('in-the-cloud');

      await press(page.getByRole('button', { name: 'Bring back to this device' }));
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device');
      // The cloud's part of the reply is in this device's store now, written by node-llama-cpp: one reply, the cut
      // piece from this device and its continuation from the cloud.
      const joined = page.getByTestId('agent-message').filter({ hasText: new RegExp(`wllama → node-llama-cpp · ${MODEL} · \\d+ tokens`) });
      await expect.poll(() => joined.count(), { timeout: 60_000 }).toBe(1);
      expect(await page.getByTestId('agent-message').count()).toBe(1);
      await chat('And then?', await page.getByTestId('agent-message').count() + 1);
      // A reply here measured this device, and the person brought the session back: it stays, and the panel says why.
      await expect.poll(() => page.getByTestId('this-device').textContent(), { timeout: 30_000 }).toMatch(/Speed\s*[\d,.]+ tok\/s/);
      // The panel says "Coming back…" until the placement is looked at again after the move.
      await expect.poll(() => page.getByTestId('placement-reason').textContent(), { timeout: 30_000 }).toMatch(/^Stays on this device: you brought it back/);
      await screen('brought-back');
      await useMyDevices(512);
    });

    test('runs a session here, verified by the cloud worker (a reload keeps it so), and back to this device alone, from the "Where it runs" panel', async () => {
      await useMyDevices();
      await createSession(/Assistant/, 'Verified here');
      const panel = page.getByTestId('where-it-runs');
      await press(panel.locator('summary'));
      const verified = page.getByRole('button', { name: 'Draft here, verify in the cloud' });
      await expect.poll(() => verified.isEnabled(), { timeout: 60_000 }).toBe(true);
      await press(verified);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device, verified by the cloud worker');
      await expect.poll(() => page.getByText(/runs on This device, verified by the cloud worker/).count(), { timeout: 30_000 }).toBeGreaterThan(0);
      // The reply is drafted by wllama in this page's worker and verified by the relay's node-llama-cpp: its transcript says so.
      await chat('Tell me about the harbour.', 1);
      await expect.poll(() => page.getByTestId('agent-message').filter({ hasText: new RegExp(`speculative · ${MODEL} · \\d+ tokens`) }).count(), { timeout: 60_000 }).toBe(1);
      await screen('verified-by-the-cloud');
      // The reply measured how well this device drafts: placement estimates running so with that from now on.
      await expect.poll(() => page.evaluate(() => localStorage.getItem('ferry-speculative-acceptance')), { timeout: 30_000 }).toMatch(/"agree":/);
      // A reload keeps it so: the session opens drafting here, verified by the cloud worker.
      await page.reload();
      await transcriptReady();
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device, verified by the cloud worker');
      await press(panel.locator('summary'));
      await press(page.getByRole('button', { name: 'Run on this device alone' }));
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device');
      await chat('And then?', 2);
      await expect.poll(() => page.getByTestId('agent-message').filter({ hasText: new RegExp(`wllama · ${MODEL} · \\d+ tokens`) }).count(), { timeout: 60_000 }).toBe(1);
    });

    test('in the cloud: checkpoints show as they land, Stop stops the cloud run there, a reload keeps following it, and Bring back works after', async () => {
      // Long replies, so a cloud run (node-llama-cpp is fast) lasts long enough to stop and to reload in the middle
      // of it: Settings' reply length goes with every run started from this page, in the cloud too — the session
      // itself was created with (and recorded) 512.
      await createSession(/Assistant/, 'Cloud stay');
      await setLimits(3000, 4096);
      await openSession('Cloud stay');
      const panel = page.getByTestId('where-it-runs');
      await press(panel.locator('summary'));
      await pressMoveToCloud(page, press);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      const cloudLive = async (): Promise<boolean> =>
        (await page.getByTestId('live-reply').getAttribute('data-where', { timeout: 50 }).catch(() => null)) === 'cloud' &&
        ((await page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 40;

      // Stop: the cloud run hands back its checkpoint, and the session stays in the cloud, idle.
      await send('Tell me a long story about the cloud.');
      await expect.poll(cloudLive, { timeout: 60_000, interval: 10 }).toBe(true);
      await press(page.getByRole('button', { name: 'Stop' }));
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      expect(await page.getByTestId('runs-on').textContent()).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 30_000 }).toBe(1);
      expect(await page.getByTestId('agent-message').textContent()).toMatch(new RegExp(`node-llama-cpp · ${MODEL} · \\d+ tokens · stopped`));
      expect(await page.getByTestId('unsent-message').count()).toBe(0);
      // The checkpoint tree holds the cloud's checkpoints too.
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => page.getByTestId('tree-node').filter({ hasText: '(head)' }).count()).toBe(1);
      expect(await page.getByTestId('tree-node').filter({ hasText: 'You: Tell me a long story about the cloud.' }).count()).toBe(1);
      await screen('tree-cloud');
      await press(page.getByRole('link', { name: 'Chat' }));
      await transcriptReady();

      // The next message starts a new cloud run; the page reloads in the middle of it and follows it on.
      await send('And now the next chapter.');
      await expect.poll(cloudLive, { timeout: 60_000, interval: 10 }).toBe(true);
      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await transcriptReady();
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('Cloud worker');
      // Still streaming from the cloud when the page came back, or over already and caught up from its events. A
      // 3,000-token cloud reply on a busy machine can take minutes.
      let sawLive = false;
      await expect
        .poll(async () => {
          sawLive ||= (await page.getByTestId('live-reply').getAttribute('data-where', { timeout: 50 }).catch(() => null)) === 'cloud';
          return page.getByTestId('agent-message').count();
        }, { timeout: 150_000, interval: 20 })
        .toBe(2);
      console.info(`${device.name}: after the reload the cloud run was ${sawLive ? 'still streaming, and was followed live' : 'over; its events and checkpoints were caught up'}`);
      const second = (await page.getByTestId('agent-message').nth(1).textContent()) ?? '';
      expect(second).toMatch(new RegExp(`node-llama-cpp · ${MODEL} · \\d+ tokens`));
      expect(Number(/· (\d+) tokens/.exec(second)?.[1]), 'the cloud run kept to Settings\' reply length, not the recorded 512').toBeGreaterThan(512);
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      expect(await page.getByTestId('user-message').allTextContents()).toEqual([expect.stringContaining('Tell me a long story'), expect.stringContaining('And now the next chapter.')]);
      expect(await page.getByTestId('unsent-message').count()).toBe(0);
      expect(await page.getByTestId('runs-on').textContent()).toBe('Cloud worker');
      await screen('in-the-cloud-after-reload');

      // Bring back still works: the session is this device's again, with everything the cloud wrote.
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await press(page.getByRole('button', { name: 'Bring back to this device' }));
      const back = page.getByTestId('runs-on').filter({ hasText: /^This device$/ }).or(page.getByTestId('error-toast'));
      await expect.poll(() => back.count(), { timeout: 90_000 }).toBeGreaterThan(0);
      expect(await page.getByTestId('error-toast').allTextContents(), 'bring back failed').toEqual([]);
      expect(await page.getByTestId('runs-on').textContent()).toBe('This device');
      expect(await page.getByTestId('agent-message').count()).toBe(2);
      await page.reload();
      await page.locator('html[data-ready="true"]').waitFor();
      await transcriptReady();
      expect(await page.getByTestId('runs-on').textContent()).toBe('This device');
      await setLimits(512, 4096);
      expect(rig.pageErrors).toEqual([]);
    }, 360_000);

    test('deleted while its cloud run goes on: the run stops there, nothing of it comes back, and Undo restores it in the cloud', async () => {
      await setLimits(3000, 4096);
      await createSession(/Assistant/, 'Cloud delete');
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await pressMoveToCloud(page, press);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      await send('Tell me a long story, which I will not wait for.');
      await expect
        .poll(async () => ((await page.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length, { timeout: 60_000, interval: 10 })
        .toBeGreaterThan(40);

      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      // Counted once the list shows it (count() does not wait for the list to render).
      await page.getByRole('button', { name: 'Delete Cloud delete' }).waitFor({ timeout: 30_000 });
      const rows = await page.getByTestId('session-row').count();
      await press(page.getByRole('button', { name: 'Delete Cloud delete' }));
      await expect.poll(() => page.getByTestId('session-row').count(), { timeout: 30_000 }).toBe(rows - 1);
      // The relay's workers run nothing any more, and the session does not come back into the list.
      const runs = async (): Promise<number> => ((await (await fetch(`${relay.url}/api/v2/workers`)).json()) as { workers: { runs: number }[] }).workers.reduce((n, w) => n + w.runs, 0);
      await expect.poll(runs, { timeout: 30_000 }).toBe(0);
      // The list read again from the store (leaving it and coming back) still lacks it: nothing of it came back.
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await expect.poll(() => page.getByTestId('session-row').count(), { timeout: 30_000 }).toBe(rows - 1);

      await press(page.getByRole('button', { name: 'Undo' }));
      await expect.poll(() => page.getByTestId('session-row').count(), { timeout: 30_000 }).toBe(rows);
      await openSession('Cloud delete');
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('Cloud worker');
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 30_000 }).toBe('false');
      // The reply the run had written when it was handed back is the session's, stopped there.
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 30_000 }).toBe(1);
      expect(await page.getByTestId('agent-message').textContent()).toMatch(new RegExp(`node-llama-cpp · ${MODEL} · \\d+ tokens · stopped`));
      await setLimits(512, 4096);
      expect(rig.pageErrors).toEqual([]);
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
      await expect.poll(() => page.getByTestId('session-row').count()).toBe(7);
      await screen('sessions-offline');
      await press(page.getByRole('link', { name: 'Holiday itinerary' }));
      await transcriptReady();
      await expect.poll(() => page.getByTestId('user-message').count()).toBe(3);
      await screen('chat-offline');
      expect(rig.pageErrors).toEqual([]);
    });
  });
}
