/**
 * Share links end to end, through the built app only: on device A (a desktop) a person chooses the relay's model,
 * creates a session, chats, forks a branch and shares it from the session screen; device B (a phone: a separate
 * Chromium with its own profile, nothing shared) opens the link. The app on B copies the session into its own
 * store — the same transcript and branches — takes the key out of the address bar, and continues it on B. A shares
 * again after more turns: the same link, only what changed goes up, and B opening it again follows. The relay's data
 * folder never holds the key or the conversation's words. A link whose snapshot is gone, or whose key was changed,
 * says what happened. Along the way, the first run: A is asked once where its sessions may run (in words, with its
 * first session), and Settings keeps the answer; the session keeps its own title through the link and through a
 * .ferry file, whatever the file is called.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { launchFreshChromium, type FreshBrowser } from '../support/browser.ts';
import { devices, startUi, type UiRig } from './ui-harness.ts';

const CANARY = 'the lighthouse keeper counted seventeen gulls';

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await allFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('share links between two devices, through the app', () => {
  let rig: UiRig;
  let a: Page;
  let phone: FreshBrowser;
  let b: Page;
  let link = '';

  beforeAll(async () => {
    rig = await startUi(devices[1], 'share');
    a = rig.page;
    phone = await launchFreshChromium({ viewport: { ...devices[0].viewport }, isMobile: true, hasTouch: true });
    b = await phone.context.newPage();
  }, 180_000);

  afterAll(async () => {
    await phone?.close();
    await rig?.close();
  });

  /** Chooses the relay's model on the Models screen of `page`. */
  async function chooseRelayModel(page: Page, tap: boolean): Promise<void> {
    const press = (l: ReturnType<Page['locator']>) => (tap ? l.tap() : l.click());
    await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
    await press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
  }

  /** Sends a message on `page` and waits for the agent's reply to be checkpointed. */
  async function chat(page: Page, text: string, replies: number): Promise<void> {
    await page.getByLabel('Message').fill(text);
    await page.getByLabel('Message').press('Enter');
    await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 60_000 }).toBe(replies);
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
  }

  /** Shares the open session on A; returns the link and what the dialog says went up. */
  async function share(): Promise<{ link: string; uploaded: string }> {
    await rig.press(a.getByRole('button', { name: 'Share', exact: true }));
    const field = a.getByTestId('share-link');
    await field.waitFor({ timeout: 60_000 });
    const shared = { link: (await field.inputValue()).trim(), uploaded: (await a.getByTestId('share-uploaded').textContent()) ?? '' };
    await rig.press(a.getByRole('button', { name: 'Close' }));
    return shared;
  }

  test('A shares a session; B opens the link in the app, has the same transcript and branches, without the key in its address bar, and continues it', async () => {
    await chooseRelayModel(a, false);
    await rig.press(a.getByRole('link', { name: 'Sessions', exact: true }));
    await rig.press(a.getByLabel(/Assistant/));
    await a.getByLabel(/^Title/).fill('Harbour log');
    // The first session asks, in words, where sessions may run: this device only until answered otherwise.
    const question = a.getByRole('group', { name: 'Where may your sessions run?' });
    expect(await question.getAttribute('data-testid')).toBe('privacy-question');
    expect(await question.getByLabel('Only on this device').isChecked()).toBe(true);
    await rig.press(question.getByLabel("Also on your relay's cloud worker and your paired devices"));
    await rig.press(a.getByRole('button', { name: 'Create session' }));
    await expect.poll(() => a.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await rig.transcriptReady();
    // The answer is kept: Settings shows it, for every session on this device, and the question is not asked again.
    await rig.press(a.getByRole('link', { name: 'Settings', exact: true }));
    await a.getByTestId('settings-form').waitFor();
    expect(await a.getByRole('group', { name: 'Where your sessions may run' }).getByLabel('My devices').isChecked()).toBe(true);
    expect(await a.getByTestId('privacy-scope').textContent()).toBe('For every session on this device, those you have and those you start.');
    // Settings changes it later: this device only, for the rest of this suite (the session stays here).
    await rig.press(a.getByLabel('Only on this device'));
    await rig.press(a.getByRole('button', { name: 'Save settings' }));
    await expect.poll(() => a.getByTestId('toast').last().textContent(), { timeout: 30_000 }).toContain('Settings saved');
    await rig.press(a.getByRole('link', { name: 'Sessions', exact: true }));
    await a.getByRole('button', { name: 'Create session' }).waitFor();
    expect(await a.getByTestId('privacy-question').count()).toBe(0);
    await rig.press(a.getByRole('link', { name: 'Harbour log', exact: true }));
    await rig.transcriptReady();
    await chat(a, `Note this: ${CANARY}.`, 1);
    const shared = await share();
    link = shared.link;
    expect(link).toMatch(new RegExp(`^${rig.relay.url}/s/[0-9a-f]{40}#k=[A-Za-z0-9_-]{43}$`));

    // B has never seen the session: it follows the link, and the app opens it.
    await b.goto(link);
    await b.locator('html[data-ready="true"]').waitFor();
    await expect.poll(() => b.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    expect(b.url()).not.toContain('#k=');
    await b.getByTestId('transcript').and(b.locator('[data-ready="true"]')).waitFor();
    expect(await b.getByTestId('user-message').allTextContents()).toEqual([expect.stringContaining(CANARY)]);
    expect(await b.getByTestId('agent-message').count()).toBe(1);
    expect(await b.getByTestId('current-branch').textContent()).toBe('main');
    // It opens under its own title, not its first message.
    expect(await b.locator('#session-heading').textContent()).toBe('Harbour log');
    // The browser's history holds no entry with the key either.
    await b.goBack().catch(() => undefined);
    expect(b.url()).not.toContain('#k=');
    await b.goForward().catch(() => undefined);

    // B continues it here, on its own model.
    const sessionUrl = b.url().includes('#/s/') ? b.url() : '';
    await chooseRelayModel(b, true);
    await b.goto(sessionUrl);
    await b.getByTestId('transcript').and(b.locator('[data-ready="true"]')).waitFor();
    await chat(b, 'And what did the keeper do next?', 2);

    // The relay never saw the key or the words: its data folder holds neither.
    const keyText = Buffer.from(link.slice(link.indexOf('#k=') + 3));
    for (const f of await allFiles(rig.dataDir)) {
      const bytes = await readFile(f);
      for (const needle of [keyText, Buffer.from(CANARY)]) expect(bytes.includes(needle), `${path.relative(rig.dataDir, f)} holds a secret`).toBe(false);
    }
  });

  test('A shares again after more turns: the same link, only what changed goes up; B opening it again has the new turns', async () => {
    await chat(a, 'Tell me one more thing about the harbour.', 2);
    const again = await share();
    expect(again.link).toBe(link);
    expect(again.uploaded).toMatch(/^\d+ new objects? uploaded/);
    await b.goto('about:blank');
    await b.goto(link);
    await expect.poll(() => b.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await b.getByTestId('transcript').and(b.locator('[data-ready="true"]')).waitFor();
    await expect.poll(() => b.getByTestId('user-message').filter({ hasText: 'one more thing' }).count(), { timeout: 30_000 }).toBe(1);
  });

  test('a link whose snapshot is gone, or whose key was changed, says what happened', async () => {
    const gone = link.replace(/\/s\/([0-9a-f]{40})/, (_, id: string) => `/s/${id.slice(0, -4)}0000`);
    await b.goto('about:blank');
    await b.goto(gone);
    await expect.poll(() => b.getByTestId('open-shared').getByRole('alert').textContent(), { timeout: 60_000 }).toMatch(/not on the relay any more/);
    const key = link.slice(link.indexOf('#k=') + 3);
    const wrong = `${link.slice(0, link.indexOf('#k=') + 3)}${key[0] === 'A' ? 'B' : 'A'}${key.slice(1)}`;
    await b.goto('about:blank');
    await b.goto(wrong);
    await expect.poll(() => b.getByTestId('open-shared').getByRole('alert').textContent(), { timeout: 60_000 }).toMatch(/key does not open/);
    expect(b.url()).not.toContain('#k=');
  });

  test('a session exported as a .ferry file is imported under its own title, whatever the file is called', async () => {
    // On B, the shared session goes out as a file, is deleted, and comes back in from that file under another name.
    await b.goto(link.slice(0, link.indexOf('/s/')));
    await b.locator('html[data-ready="true"]').waitFor();
    await b.getByRole('link', { name: 'Harbour log', exact: true }).tap();
    await b.getByTestId('transcript').and(b.locator('[data-ready="true"]')).waitFor();
    const download = b.waitForEvent('download');
    await b.getByRole('button', { name: 'Export .ferry' }).tap();
    expect((await download).suggestedFilename()).toBe('Harbour-log.ferry');
    const file = path.join(rig.work, 'download (3).ferry');
    await (await download).saveAs(file);
    await b.getByRole('link', { name: 'Sessions', exact: true }).tap();
    await b.getByRole('button', { name: 'Delete Harbour log' }).tap();
    await expect.poll(() => b.getByRole('link', { name: 'Harbour log', exact: true }).count(), { timeout: 30_000 }).toBe(0);
    await b.getByTestId('import-input').setInputFiles(file);
    await expect.poll(() => b.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await expect.poll(() => b.locator('#session-heading').textContent(), { timeout: 30_000 }).toBe('Harbour log');
  });
});
