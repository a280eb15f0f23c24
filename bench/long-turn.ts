/**
 * long_turn_ms_20 for the pwa suite: an Assistant session in the built app, on this device (wllama, the relay's tiny
 * generated model, chosen on the Models screen), with 256-token replies and a 4,096-token context — twenty turns, so
 * the conversation outgrows the context (about the ninth turn: the system message with its tool's instructions takes
 * some 1,600 tokens) and the older turns are compacted. Each turn is timed from Enter in the message box to the first
 * token in the live reply. The figure is the 20th turn's, against the 1st turn's of the same session. A warm-up
 * session runs one turn first, so neither includes loading the engine and the model.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { generateTinyModel } from '../src/core/llm/gguf/tiny-model.ts';
import { launchFreshChromium } from '../test/support/browser.ts';
import { startRelayProcess } from '../test/support/relay-process.ts';
import { waitFor } from '../test/support/wait.ts';
import { compared, type Figures } from './lib.ts';

const TURNS = 20;
const REPLY = 256;
const CONTEXT = 4096;
const TURN_TIMEOUT_MS = 180_000;

/**
 * Presses Enter in the message box; ms from that key to the first text in the live reply, timed in the page. (A
 * string, not a function: tsx would wrap named inner functions in a helper the page does not have.)
 */
async function sendAndTimeFirstToken(page: Page, text: string): Promise<number> {
  const box = page.getByLabel('Message');
  await box.fill(text);
  const first = page.evaluate(`new Promise((resolve) => {
    const box = document.getElementById('composer-text');
    box.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter') return;
      const t0 = performance.now();
      // A live reply left from before the key does not count: a new one, or new text in it, does.
      const live = () => document.querySelector('[data-testid="live-text"]');
      const before = live();
      const beforeText = before?.textContent ?? '';
      const seen = () => {
        const text = live()?.textContent ?? '';
        return text.length > 0 && (live() !== before || text !== beforeText);
      };
      const observer = new MutationObserver(() => {
        if (!seen()) return;
        observer.disconnect();
        resolve(performance.now() - t0);
      });
      observer.observe(document.body, { subtree: true, childList: true, characterData: true });
    }, { capture: true, once: true });
  })`) as Promise<number>;
  // The listener is in place once the evaluation has run its synchronous part; a no-op round trip makes sure.
  await page.evaluate('0');
  await box.press('Enter');
  return first;
}

/** Waits until the session shows `replies` replies and nothing runs; fails on an error notice. */
async function answered(page: Page, replies: number): Promise<void> {
  await waitFor(`reply ${replies}`, async () => {
    const error = page.getByTestId('error-toast');
    if ((await error.count()) > 0) throw new Error(`turn ${replies} failed: ${await error.first().textContent()}`);
    return (await page.getByTestId('agent-message').count()) >= replies && (await page.getByTestId('composer').getAttribute('data-running')) === 'false';
  }, { timeoutMs: TURN_TIMEOUT_MS, intervalMs: 50 });
}

async function createSession(page: Page, title: string): Promise<void> {
  await page.getByRole('link', { name: 'Sessions', exact: true }).click();
  await page.getByLabel(/Assistant/).click();
  await page.getByLabel(/^Title/).fill(title);
  await page.getByRole('button', { name: 'Create session' }).click();
  await page.getByTestId('transcript').and(page.locator('[data-ready="true"]')).waitFor({ timeout: 60_000 });
}

export async function longTurnFigures(): Promise<Figures> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-long-'));
  const model = path.join(work, 'tiny.gguf');
  await writeFile(model, generateTinyModel({ ctx: CONTEXT }));
  const relay = await startRelayProcess(['--data', path.join(work, 'data'), '--model', model]);
  const browser = await launchFreshChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(relay.url);
    await page.locator('html[data-ready="true"]').waitFor({ timeout: 60_000 });
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
    await page.getByTestId('relay-models').getByRole('button', { name: /^Use / }).click();
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 90_000 });
    // "This device only": every turn runs here.
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByLabel('This device only').check();
    await page.getByLabel('Reply length (tokens)').fill(String(REPLY));
    await page.getByLabel('Context size (tokens)').fill(String(CONTEXT));
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByTestId('toast').filter({ hasText: 'Settings saved' }).waitFor();

    await createSession(page, 'Warm-up');
    await sendAndTimeFirstToken(page, 'Hello.');
    await answered(page, 1);

    await createSession(page, 'Long talk');
    const firstToken: number[] = [];
    for (let n = 1; n <= TURNS; n++) {
      firstToken.push(await sendAndTimeFirstToken(page, `Turn ${n}: tell me more about the ferry.`));
      await answered(page, n);
    }
    const compacted = await page.getByTestId('compaction-note').count();
    if (compacted === 0) throw new Error(`${TURNS} turns of ${REPLY} tokens did not outgrow the ${CONTEXT}-token context: nothing was compacted.`);
    console.info(`long_turn: first token per turn (ms): ${firstToken.map((ms) => ms.toFixed(0)).join(', ')}; ${compacted} compaction notes`);
    return { long_turn_ms_20: compared(firstToken[TURNS - 1]!, 'ms', "the 1st turn's first token, same session", firstToken[0]!) };
  } finally {
    await browser.close();
    await relay.stop();
    await rm(work, { recursive: true, force: true });
  }
}
