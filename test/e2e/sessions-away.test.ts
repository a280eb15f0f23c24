/**
 * Several sessions away at once, through the built app: two sessions moved to the relay's cloud worker, then a third
 * created and run on this device. Each is placed on its own — creating and running one never waits for, or is refused
 * because of, another that runs elsewhere — and each answers where it runs; bringing one back leaves the other away.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { devices, pressMoveToCloud, startUi, type UiRig } from './ui-harness.ts';

for (const device of devices) {
  describe(`sessions away on a ${device.name}`, () => {
    let rig: UiRig;
    let page: Page;
    const press = (l: Locator): Promise<void> => rig.press(l);

    beforeAll(async () => {
      rig = await startUi(device, 'away');
      ({ page } = rig);
    });

    afterAll(() => rig?.close());

    async function createSession(title: string): Promise<void> {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Assistant/));
      await page.getByLabel(/^Title/).fill(title);
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await rig.transcriptReady();
    }

    async function openSession(title: string): Promise<void> {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByRole('link', { name: title, exact: true })).catch(async (err: unknown) => {
        throw new Error(`"${title}" is not in the session list: ${JSON.stringify(await page.getByTestId('session-row').allTextContents())}`, { cause: err });
      });
      await rig.transcriptReady();
    }

    async function send(text: string): Promise<void> {
      const box = page.getByLabel('Message');
      await box.fill(text);
      await box.press('Enter');
      await expect.poll(() => box.inputValue(), { timeout: 30_000 }).toBe('');
    }

    /** The open session has `n` replies, nothing runs, no error was shown; its last reply was written by `engine`. */
    async function answered(n: number, engine: string): Promise<void> {
      const failed = page.getByTestId('error-toast');
      await expect.poll(async () => (await failed.count()) > 0 || (await page.getByTestId('agent-message').count()) >= n, { timeout: 120_000 }).toBe(true);
      expect(await failed.allTextContents()).toEqual([]);
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      expect(await page.getByTestId('agent-message').count()).toBe(n);
      expect(await page.getByTestId('agent-message').last().textContent()).toContain(engine);
    }

    async function moveToCloud(): Promise<void> {
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await pressMoveToCloud(page, press);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('Cloud worker');
    }

    test('two sessions in the cloud worker while a third runs here: each answers where it runs, and one comes back alone', async () => {
      // The relay's model, short replies, and "My devices" so the cloud worker may take sessions.
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
      await press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
      await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await page.getByLabel('Relay URL').fill('');
      await press(page.getByLabel('My devices'));
      // What "My devices" lets automatic placement do, and what it leaves to the person.
      expect(await page.getByTestId('privacy-auto').textContent()).toBe("Sessions move by themselves only to your paired devices; your relay's free cloud workers take one when you move it there, and a survey's parts.");
      await page.getByLabel('Reply length (tokens)').fill('48');
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');

      await createSession('Away one');
      await moveToCloud();
      await createSession('Away two');
      await moveToCloud();
      await createSession('Here');
      expect(await page.getByTestId('runs-on').textContent()).toBe('This device');

      // A message to each, one after another without waiting for the replies: the two cloud runs and the device's
      // run go on at once.
      await send('Hello from here.');
      await openSession('Away one');
      await send('Hello to the first.');
      await openSession('Away two');
      await send('Hello to the second.');
      await answered(1, 'node-llama-cpp');
      await openSession('Away one');
      expect(await page.getByTestId('runs-on').textContent()).toBe('Cloud worker');
      await answered(1, 'node-llama-cpp');
      await openSession('Here');
      await answered(1, 'wllama');
      expect(await page.getByTestId('runs-on').textContent()).toBe('This device');
      await rig.screen('sessions-away');

      // The first comes back; the second stays away and still answers there.
      await openSession('Away one');
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await press(page.getByRole('button', { name: 'Bring back to this device' }));
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 90_000 }).toBe('This device');
      await send('And now here.');
      await answered(2, 'wllama');
      await openSession('Away two');
      expect(await page.getByTestId('runs-on').textContent()).toBe('Cloud worker');
      await send('Still there?');
      await answered(2, 'node-llama-cpp');
      expect(rig.pageErrors).toEqual([]);
    });
  });
}
