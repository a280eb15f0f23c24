/**
 * A conversation past the context, through the built app as a person uses it: the relay's model chosen on the Models
 * screen, an Assistant session with a 4,096-token context, twenty turns whose replies outgrow it — the older turns
 * are left out for the model, the transcript says so, and every turn is answered — with a move to the relay's cloud
 * worker in the middle of a reply after compaction and back again. A message that fits no context fails with
 * llm/context-full; once the context is large enough again, "Send again" sends it, past the context as it is.
 * Short replies (256 tokens) keep it quick: the assistant's system message with its tool's instructions takes
 * about 1,600 of the tiny model's tokens, so the conversation outgrows 4,096 tokens at about the ninth turn.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { devices, pressMoveToCloud, startUi, type UiRig } from './ui-harness.ts';

const REPLY = 256;
const CONTEXT = 4096;
const TURNS = 20;

// One viewport: the conversation's logic is the same on both, and the phone's layout is the ui suite's.
for (const device of devices.filter((d) => d.name === 'desktop')) {
  describe(`a long conversation on a ${device.name}`, () => {
    let rig: UiRig;
    let page: Page;
    const press = (l: Locator): Promise<void> => rig.press(l);

    beforeAll(async () => {
      // At info level the relay says how each run ended, which a failure below reports.
      rig = await startUi(device, 'long', { relayArgs: ['--log-level', 'info'] });
      ({ page } = rig);
    });

    afterAll(() => rig?.close());

    /** Saves Settings' limits (with "My devices", so the cloud worker may take the session, and this site's relay). */
    async function settings(replyTokens: number, contextSize: number): Promise<void> {
      await press(page.getByRole('link', { name: 'Settings', exact: true }));
      await page.getByLabel('Relay URL').fill('');
      await press(page.getByLabel('My devices'));
      await page.getByLabel('Reply length (tokens)').fill(String(replyTokens));
      await page.getByLabel('Context size (tokens)').fill(String(contextSize));
      await press(page.getByRole('button', { name: 'Save settings' }));
      await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
    }

    async function openSession(title: string): Promise<void> {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByRole('link', { name: title, exact: true }));
      await rig.transcriptReady();
    }

    const question = (n: number): string => `Turn ${n}: tell me more about the ferry.`;

    async function send(n: number): Promise<void> {
      const box = page.getByLabel('Message');
      await box.fill(question(n));
      await box.press('Enter');
      await expect.poll(() => box.inputValue(), { timeout: 30_000 }).toBe('');
    }

    /**
     * For a failure's report: the session's unsent-message record and the last moves of its refs in the device's
     * store (IndexedDB, read as it is; the app does nothing here).
     */
    async function storeLog(): Promise<string> {
      const id = /#\/s\/([0-9a-f]{32})/.exec(page.url())?.[1] ?? '';
      return page.evaluate(async (session) => {
        const open = (name: string) => new Promise<IDBDatabase>((resolve, reject) => Object.assign(indexedDB.open(name), { onsuccess(this: IDBRequest<IDBDatabase>) { resolve(this.result); }, onerror: reject }));
        const all = (db: IDBDatabase, store: string) => new Promise<unknown[]>((resolve, reject) => Object.assign(db.transaction(store).objectStore(store).getAll(), { onsuccess(this: IDBRequest<unknown[]>) { resolve(this.result); }, onerror: reject }));
        const pending = (await all(await open('ferry-app'), 'pending')).map((p) => JSON.stringify(p));
        const moves = (await all(await open('ferry'), 'reflog')).filter((r) => JSON.stringify(r).includes(session)).slice(-16).map((r) => JSON.stringify(r));
        return `pending: ${pending.join(' ')}\nreflog:\n${moves.join('\n')}`;
      }, id);
    }

    /** Waits until turn `n` is answered: its reply is in the transcript, nothing runs, and no error was shown. */
    async function answered(n: number): Promise<void> {
      const failed = page.getByTestId('error-toast');
      await expect
        .poll(async () => (await failed.count()) > 0 || (await page.getByTestId('agent-message').count()) >= n, { timeout: 120_000 })
        .toBe(true)
        .catch(async (err: unknown) => {
          // A failure says where the session was and how the transcript ends.
          const where = await page.getByTestId('runs-on').textContent().catch(() => null);
          const end = (await page.getByTestId('transcript').textContent().catch(() => null))?.slice(-600);
          const runs = rig.relay.output().split('\n').filter((line) => /"msg":"(run |worker )/.test(line)).slice(-12).join('\n');
          const said = [...rig.pageErrors, ...rig.consoleLog].slice(-8).join('\n');
          const stored = await storeLog().catch((e: unknown) => `(could not be read: ${String(e)})`);
          throw new Error(`turn ${n} was not answered; it runs on ${where}; the transcript ends: ${end}\nThe relay's last runs:\n${runs}\nThe page's last errors and warnings:\n${said}\nThe device's store:\n${stored}`, { cause: err });
        });
      expect(await failed.allTextContents(), `turn ${n}`).toEqual([]);
      await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
      expect(await page.getByTestId('agent-message').count()).toBe(n);
    }

    test(`${TURNS} long turns past a ${CONTEXT}-token context, moved to the cloud worker mid-reply and back: every turn is answered and the transcript says what the model no longer sees`, async () => {
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
      await press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
      await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
      await settings(REPLY, CONTEXT);

      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Assistant/));
      await page.getByLabel(/^Title/).fill('Long talk');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await rig.transcriptReady();

      const notes = page.getByTestId('compaction-note');
      let n = 0;
      // On this device until the conversation has outgrown the context.
      while (n < 10 || (await notes.count()) === 0) {
        expect(n, 'the conversation outgrew the context within the turns it has').toBeLessThan(TURNS - 6);
        await send(++n);
        await answered(n);
      }
      expect(await notes.first().textContent()).toMatch(/^The model no longer sees the first \d+ turns of this conversation/);
      await rig.screen('long-compacted');

      // The next reply moves to the cloud worker while it streams from this device.
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await send(++n);
      const live = page.getByTestId('live-reply');
      await expect.poll(async () => (await live.getAttribute('data-where', { timeout: 50 }).catch(() => null)) === 'device' || (await page.getByTestId('agent-message').count()) >= n, { timeout: 60_000, interval: 10 }).toBe(true);
      const midReply = (await page.getByTestId('agent-message').count()) < n;
      await pressMoveToCloud(page, press);
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('Cloud worker');
      await answered(n);
      console.info(`${device.name}: turn ${n} moved to the cloud worker ${midReply ? 'in the middle of its reply' : 'after its reply (it was done before the move)'}`);
      for (const last = n + 2; n < last; ) {
        await send(++n);
        await answered(n);
      }
      expect(await page.getByTestId('agent-message').filter({ hasText: 'node-llama-cpp' }).count()).toBeGreaterThan(0);

      await press(page.getByRole('button', { name: 'Bring back to this device' }));
      await expect.poll(() => page.getByTestId('runs-on').textContent(), { timeout: 60_000 }).toBe('This device');
      while (n < TURNS - 1) {
        await send(++n);
        await answered(n);
      }

      // A context that cannot hold even the system message: the message fails, and is kept.
      await settings(REPLY, 512);
      await openSession('Long talk');
      await send(++n);
      await expect.poll(() => page.getByTestId('error-toast').getAttribute('data-code'), { timeout: 60_000 }).toBe('llm/context-full');
      expect(await page.getByTestId('error-toast').textContent()).toMatch(/the context holds 512/);
      await press(page.getByRole('button', { name: 'Dismiss error' }));
      // The context back at 4,096 tokens: "Send again" sends it, the conversation still far past that context.
      await settings(REPLY, CONTEXT);
      await openSession('Long talk');
      const unsent = page.getByTestId('unsent-message');
      await expect.poll(() => unsent.textContent()).toContain(question(n));
      await press(unsent.getByRole('button', { name: 'Send again' }));
      await answered(n);
      expect(await unsent.count()).toBe(0);

      expect(await page.getByTestId('user-message').allTextContents()).toEqual(Array.from({ length: TURNS }, (_, i) => expect.stringContaining(question(i + 1)) as string));
      const replies = await page.getByTestId('agent-message').allTextContents();
      expect(replies).toHaveLength(TURNS);
      for (const reply of replies) expect(reply).toMatch(/· [1-9]\d* tokens/);
      // Compacted again after the move: each note leaves out more turns than the one before.
      const leftOut = (await notes.allTextContents()).map((t) => Number(/first (\d+) turn/.exec(t)?.[1]));
      expect(leftOut.length).toBeGreaterThan(1);
      expect(leftOut).toEqual([...leftOut].sort((a, b) => a - b));
      await rig.screen('long-done');
      expect(rig.pageErrors).toEqual([]);
    }, 900_000);
  });
}
