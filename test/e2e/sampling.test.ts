/**
 * Sampling from Settings, through the built app: temperature 0 (the default) is greedy; with a temperature and a
 * seed the agent's replies are drawn — two sessions with the same seed give the same reply, another seed another —
 * and the settings survive a reload; an agent with sampling of its own (the Assistant, greedy) samples its way while
 * the others draw.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Page } from 'playwright-core';
import { devices, startUi, type UiRig } from './ui-harness.ts';

describe('sampling settings on a desktop', () => {
  let rig: UiRig;
  let page: Page;

  beforeAll(async () => {
    rig = await startUi(devices[1], 'sampling');
    ({ page } = rig);
  });

  afterAll(() => rig?.close());

  async function settings(fields: Record<string, string>): Promise<void> {
    await rig.press(page.getByRole('link', { name: 'Settings', exact: true }));
    for (const [label, value] of Object.entries(fields)) await page.getByLabel(label, { exact: true }).fill(value);
    await rig.press(page.getByRole('button', { name: 'Save settings' }));
    await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
  }

  /** A new session, one message, and its reply's text (the message as shown, header included). */
  async function replyIn(title: string): Promise<string> {
    await rig.press(page.getByRole('link', { name: 'Sessions', exact: true }));
    await rig.press(page.getByLabel(/Assistant/));
    await page.getByLabel(/^Title/).fill(title);
    await rig.press(page.getByRole('button', { name: 'Create session' }));
    await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
    await rig.transcriptReady();
    const box = page.getByLabel('Message');
    await box.fill('Tell me about the sea.');
    await box.press('Enter');
    await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 120_000 }).toBe(1);
    await expect.poll(() => page.getByTestId('composer').getAttribute('data-running'), { timeout: 60_000 }).toBe('false');
    return (await page.getByTestId('agent-message').textContent()) ?? '';
  }

  test('greedy by default; a temperature and a seed draw the reply, the same for the same seed', async () => {
    await rig.press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
    await page.getByTestId('relay-models').waitFor({ timeout: 90_000 });
    await rig.press(page.getByTestId('relay-models').getByRole('button', { name: /^Use / }));
    await page.getByTestId('relay-model-in-use').waitFor({ timeout: 60_000 });
    await settings({ 'Reply length (tokens)': '40' });
    const greedy = await replyIn('Greedy');

    await settings({ Temperature: '1.2', Seed: '7' });
    const first = await replyIn('Drawn, seed 7');
    const second = await replyIn('Drawn again, seed 7');
    expect(second).toBe(first);
    expect(first).not.toBe(greedy);

    await settings({ Seed: '8' });
    expect(await replyIn('Drawn, seed 8')).not.toBe(first);

    await page.reload();
    await page.locator('html[data-ready="true"]').waitFor();
    await rig.press(page.getByRole('link', { name: 'Settings', exact: true }));
    expect(await page.getByLabel('Temperature', { exact: true }).inputValue()).toBe('1.2');
    expect(await page.getByLabel('Seed', { exact: true }).inputValue()).toBe('8');
    await rig.screen('settings-sampling');

    // The Assistant samples its own way, starting from the fields for all agents: greedy again, the others still draw.
    await page.getByLabel('Sampling for').selectOption('assistant');
    expect(await page.getByLabel('Temperature', { exact: true }).getAttribute('readonly')).not.toBeNull();
    await rig.press(page.getByLabel('Assistant samples its own way'));
    expect(await page.getByLabel('Temperature', { exact: true }).inputValue()).toBe('1.2');
    await page.getByLabel('Temperature', { exact: true }).fill('0');
    await rig.press(page.getByRole('button', { name: 'Save settings' }));
    await expect.poll(() => page.getByTestId('toast').last().textContent()).toContain('Settings saved');
    expect(await replyIn('Assistant, greedy on its own')).toBe(greedy);
    await rig.press(page.getByRole('link', { name: 'Settings', exact: true }));
    expect(await page.getByLabel('Temperature', { exact: true }).inputValue()).toBe('1.2');
    expect(await page.getByLabel('Sampling for').locator('option[value="assistant"]').textContent()).toBe('Assistant (its own)');
    expect(rig.pageErrors).toEqual([]);
  });
});
