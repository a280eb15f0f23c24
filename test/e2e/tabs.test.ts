/**
 * Two tabs of one browser on the same session, through the built app: one runs it, the other follows. A message sent
 * in the running tab is answered there and shows in the other; a message sent in the following tab is answered once,
 * by the running tab; a reply streams live in the following tab, which can stop it; when the running tab closes, the
 * other runs the session's next message itself, and a tab opened then follows that one; when that one crashes
 * mid-reply, the newest takes the session over and offers the message it was answering again. A session moved to the
 * cloud worker is followed the same way, and the tab that takes it over follows its relay run itself. On a phone
 * (360×780, touch) and a desktop (1280×800), as the other UI suites.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { devices, pressMoveToCloud, saveReplyLength, startUi, type UiRig } from './ui-harness.ts';

for (const device of devices) {
  describe(`two tabs on one session on a ${device.name}`, () => {
    let rig: UiRig;
    const press = (l: Locator): Promise<void> => rig.press(l);

    beforeAll(async () => {
      rig = await startUi(device, 'tabs');
    });

    afterAll(() => rig?.close());

    async function send(page: Page, text: string): Promise<void> {
      const box = page.getByLabel('Message');
      await box.fill(text);
      await box.press('Enter');
      // The box empties once the message is stored on this device.
      await expect.poll(() => box.inputValue(), { timeout: 30_000 }).toBe('');
    }

    /** Opens `url` in another tab of the same browser (the same storage), once its transcript is rendered. */
    async function openTab(url: string, name: string): Promise<Page> {
      const tab = await rig.browser.context.newPage();
      tab.on('pageerror', (err) => rig.pageErrors.push(`${name} tab: ${err.message}`));
      await tab.goto(url);
      await tab.locator('html[data-ready="true"]').waitFor();
      await tab.getByTestId('transcript').and(tab.locator('[data-ready="true"]')).waitFor();
      return tab;
    }

    /**
     * Saves the reply length in this tab's Settings; with `session`, opens that session again after. Only the replies a
     * stop or a crash cuts need to be long.
     */
    async function setReplyLength(page: Page, tokens: number, session?: string): Promise<void> {
      await saveReplyLength(page, press, tokens);
      if (session === undefined) return;
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByRole('link', { name: session, exact: true }));
      await page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor();
    }

    /** The tab shows `n` replies (and `n` messages), nothing runs there, and no error was shown. */
    async function shows(page: Page, n: number): Promise<void> {
      const failed = page.getByTestId('error-toast');
      const replies = page.getByTestId('agent-message');
      await expect.poll(async () => (await failed.count()) > 0 || (await replies.count()) >= n, { timeout: 120_000 }).toBe(true);
      expect(await failed.allTextContents()).toEqual([]);
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      await expect.poll(() => page.getByTestId('live-turn').count(), { timeout: 30_000 }).toBe(0);
      expect(await replies.count()).toBe(n);
      expect(await page.getByTestId('user-message').count()).toBe(n);
    }

    test('one tab runs the session, the other follows it, sends through it and stops it, and takes it over when it closes or crashes', async () => {
      const one = rig.page;
      await press(one.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await one.getByTestId('relay-models').waitFor({ timeout: 90_000 });
      await press(one.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
      await one.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
      // Short replies until one is stopped (the second tab, opened after, reads the same Settings).
      await setReplyLength(one, 48);
      await press(one.getByRole('link', { name: 'Sessions', exact: true }));
      await press(one.getByLabel(/Assistant/));
      await one.getByLabel(/^Title/).fill('Two tabs');
      await press(one.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => one.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await rig.transcriptReady();

      // The same session in a second tab of the same browser (same storage).
      const two = await openTab(one.url(), 'second');
      await expect.poll(() => two.getByTestId('empty-transcript').isVisible(), { timeout: 30_000 }).toBe(true);

      // Sent in the first tab: answered there, and the second shows it, saying the session runs in another tab.
      await send(one, 'hello from the first tab');
      await shows(one, 1);
      await shows(two, 1);
      expect(await two.getByTestId('user-message').first().textContent()).toContain('hello from the first tab');
      await two.getByTestId('other-tab').waitFor({ timeout: 30_000 });
      expect(await one.getByTestId('other-tab').count()).toBe(0);
      // Moving it is the running tab's business: the follower says why it cannot.
      await press(two.getByTestId('where-it-runs').locator('summary'));
      await expect.poll(() => two.getByTestId('move-blocked').textContent(), { timeout: 30_000 }).toMatch(/Another tab of this browser runs this session/);
      expect(await two.getByRole('button', { name: 'Move to the cloud worker' }).isDisabled()).toBe(true);

      // Sent in the second tab: the first runs it, and it is answered once, in both tabs.
      await send(two, 'hello from the second tab');
      await shows(two, 2);
      await shows(one, 2);
      for (const page of [one, two]) expect(await page.getByTestId('user-message').last().textContent()).toContain('hello from the second tab');
      // The first tab ran it: the second still follows.
      expect(await two.getByTestId('other-tab').count()).toBe(1);

      // Streamed in the first tab, shown live in the second as it streams, and stopped from there: a long reply.
      await setReplyLength(one, 512, 'Two tabs');
      await send(one, 'a long one, stopped from the second tab');
      await expect.poll(async () => ((await two.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 20, { timeout: 60_000, interval: 10 }).toBe(true);
      await press(two.getByRole('button', { name: 'Stop' }));
      await shows(one, 3);
      await shows(two, 3);
      for (const page of [one, two]) expect(await page.getByTestId('agent-message').last().textContent()).toMatch(/tokens · stopped/);

      // The first tab closes: the second may run the session now, and runs its next message itself.
      await one.close();
      await expect.poll(() => two.getByTestId('other-tab').count(), { timeout: 30_000 }).toBe(0);
      await send(two, 'the first tab is gone');
      await shows(two, 4);
      expect(await two.getByTestId('user-message').last().textContent()).toContain('the first tab is gone');
      // A long reply for what follows, so the second tab surely dies before it is done (Settings are each tab's own).
      await setReplyLength(two, 1024, 'Two tabs');

      // A tab opened now follows the second.
      const three = await openTab(two.url(), 'third');
      await three.getByTestId('other-tab').waitFor({ timeout: 30_000 });
      await shows(three, 4);

      // The second tab crashes mid-reply: the third takes the session over and offers the message again, unlost.
      await send(two, 'sent just before this tab crashes');
      await expect.poll(async () => ((await three.getByTestId('live-text').textContent({ timeout: 50 }).catch(() => null)) ?? '').length > 20, { timeout: 60_000, interval: 10 }).toBe(true);
      const cdp = await rig.browser.context.newCDPSession(two);
      const crashed = two.waitForEvent('crash');
      void cdp.send('Page.crash').catch(() => undefined);
      await crashed;
      await two.close();
      await expect.poll(() => three.getByTestId('other-tab').count(), { timeout: 30_000 }).toBe(0);
      const unsent = three.getByTestId('unsent-message');
      await expect.poll(() => unsent.textContent(), { timeout: 30_000 }).toContain('sent just before this tab crashes');
      expect(await three.getByTestId('agent-message').count()).toBe(4);
      // The message sent again needs no long reply: the third tab (which read 1,024 when it opened) answers it short.
      await setReplyLength(three, 48, 'Two tabs');
      await expect.poll(() => unsent.textContent(), { timeout: 30_000 }).toContain('sent just before this tab crashes');
      await press(unsent.getByRole('button', { name: 'Send again' }));
      await shows(three, 5);
      expect(await unsent.count()).toBe(0);
      expect(await three.getByTestId('user-message').last().textContent()).toContain('sent just before this tab crashes');
      rig.page = three;
      expect(rig.pageErrors).toEqual([]);
    });

    test('a session moved to the cloud worker: another tab follows the tab that follows the run, and takes the run over when that tab closes', async () => {
      const one = rig.page;
      await press(one.getByRole('link', { name: 'Settings', exact: true }));
      await press(one.getByLabel('My devices'));
      await one.getByLabel('Reply length (tokens)').fill('48');
      await press(one.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => one.getByTestId('toast').last().textContent()).toContain('Settings saved');
      await press(one.getByRole('link', { name: 'Sessions', exact: true }));
      await press(one.getByLabel(/Assistant/));
      await one.getByLabel(/^Title/).fill('In the cloud');
      await press(one.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => one.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await one.getByTestId('transcript').and(one.locator('[data-ready="true"]')).waitFor();
      await press(one.getByTestId('where-it-runs').locator('summary'));
      await pressMoveToCloud(one, press);
      await expect.poll(() => one.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('Cloud worker');

      // Another tab follows the first, which follows the run in the cloud worker; a message sent there goes that way.
      const two = await openTab(one.url(), 'cloud follower');
      await two.getByTestId('other-tab').waitFor({ timeout: 30_000 });
      await expect.poll(() => two.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('Cloud worker');
      await send(two, 'hello to the cloud from the other tab');
      await shows(two, 1);
      await shows(one, 1);
      for (const page of [one, two]) expect(await page.getByTestId('agent-message').last().textContent()).toContain('node-llama-cpp');

      // The first tab closes: the other follows the cloud run itself now, and its next message is answered there.
      await one.close();
      await expect.poll(() => two.getByTestId('other-tab').count(), { timeout: 30_000 }).toBe(0);
      await expect.poll(() => two.getByTestId('runs-on').textContent(), { timeout: 30_000 }).toBe('Cloud worker');
      await send(two, 'still in the cloud?');
      await shows(two, 2);
      expect(await two.getByTestId('agent-message').last().textContent()).toContain('node-llama-cpp');
      rig.page = two;
      expect(rig.pageErrors).toEqual([]);
    });
  });
}
