/**
 * The Notes panel, in Debian's Chromium against the built app served by `ferry start`, on a phone (360×780, touch)
 * and a desktop (1280×800). An Assistant session written as the PWA writes one — the real assistant and notes components, checkpointed by the
 * agent runtime — followed by a notes call that adds a note, is imported through the UI: its Notes panel shows the
 * note, and, chosen in the checkpoint tree, a checkpoint from before the call shows no note.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import path from 'node:path';
import { devices, startUi, type UiRig } from './ui-harness.ts';
import { disposeEngine, ferryFile, gen, importThroughUi, openPanelTab, reply, toolCall, toolResult, user } from './panel-sessions.ts';

const ASSISTANT = { agent: 'assistant', tools: ['notes'] };

afterAll(disposeEngine);

for (const device of devices) describe(`the Notes panel on a ${device.name}`, () => {
  let rig: UiRig;

  beforeAll(async () => {
    rig = await startUi(device, 'notes-panel');
  });

  afterAll(() => rig?.close());

  test('shows the note the assistant wrote with its notes tool, and no note as at a checkpoint from before it', async () => {
    const { page } = rig;
    const file = await ferryFile([
      [user('Hello'), gen('Hello! What shall I note down?')],
      [user('Note the harbour times'), gen('Noting them.', 'tool-call'), toolCall('n1', { op: 'add', title: 'Harbour times', body: 'The ferry leaves at **7:40**.' }, 'notes')],
      [toolResult('n1', true, { id: 1 })],
      [reply('Noted: the ferry leaves at 7:40.')],
    ], ASSISTANT, path.join(rig.work, 'tiny.gguf'));
    await importThroughUi(rig, 'assistant.ferry', file, 'Assistant');
    await openPanelTab(rig, 'Notes');
    const panel = page.getByTestId('notes-panel');
    const titles = () => panel.getByTestId('note-title').allTextContents();
    await expect.poll(titles, { timeout: 30_000 }).toEqual(['Harbour times']);
    expect(await panel.getByTestId('note').textContent()).toContain('The ferry leaves at 7:40.');
    await rig.screen('panel-notes');

    // The checkpoint of the first message, before any notes call: no note then.
    await rig.press(page.getByRole('link', { name: 'Checkpoints' }));
    const row = page.getByTestId('tree-node').filter({ hasText: 'You: Hello' });
    await expect.poll(() => row.count(), { timeout: 30_000 }).toBe(1);
    await rig.press(row);
    const view = page.getByTestId('view-at-checkpoint');
    await expect.poll(() => view.textContent(), { timeout: 30_000 }).toBe('Show the notes as at this checkpoint');
    await rig.press(view);
    await expect.poll(() => page.getByTestId('as-at-checkpoint').textContent(), { timeout: 30_000 }).toMatch(/the\s+notes as they were then/);
    await expect.poll(() => panel.getByTestId('no-notes').count(), { timeout: 30_000 }).toBe(1);
    expect(await titles()).toEqual([]);

    await rig.press(page.getByTestId('back-to-latest'));
    await expect.poll(titles, { timeout: 30_000 }).toEqual(['Harbour times']);
    expect(rig.pageErrors).toEqual([]);
  });
});
