/**
 * The per-template panels and "Retry", in Debian's Chromium against the built app served by `ferry start`, on a
 * phone (360×780, touch) and a desktop (1280×800). The generated tiny model writes gibberish, so the panels' content
 * comes from sessions written here as the PWA writes them — the template's real agent and tool components (the
 * built ones the app serves) with their first state, checkpointed by the agent runtime — followed by the events a
 * dev-guide, podcast and survey agent produce (tool calls and results of the workspace tool; the podcast's rendered
 * script and the survey's assembled draft, which the agents send as their replies), exported as .ferry files and
 * imported through the UI. An import is catalogued under
 * the template its agent belongs to, and a message sent in it runs that agent; a session without an agent is read
 * only. "Retry" runs the real agent on the generated model.
 * Every panel is screenshot into test-results/ui/ and checked with axe-core (no serious or critical violation).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Locator, Page } from 'playwright-core';
import { devices, saveReplyLength, startUi, type UiRig } from './ui-harness.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { importSession as importFerry } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { readHostState } from '../../src/core/runtime/index.ts';
import { componentId } from '../../server/runtime/node-components.ts';
import { built, disposeEngine, ferryFile, gen, importThroughUi, openPanelTab, reply, toolCall, toolResult, user } from './panel-sessions.ts';
import { renderScript } from '../../components/podcast/script.ts';
import { bibliography } from '../../components/survey/draft.ts';
import { generatedSources } from '../unit/parallel/space-nodes.ts';

/** The agent component id and the loop's step count at the head of an exported session. */
async function headAgent(file: Uint8Array): Promise<{ agent: string; steps: number }> {
  const store = createMemoryStore();
  const session = await Session.open(store, await importFerry(store, file));
  const host = await readHostState(session, await session.head());
  return { agent: host.agent, steps: host.loop.steps };
}

const ADD = 'export function add(a: number, b: number): number {\n  return a - b;\n}\n';
const FIX = ['--- a/src/math.ts', '+++ b/src/math.ts', '@@ -1,3 +1,3 @@', ' export function add(a: number, b: number): number {', '-  return a - b;', '+  return a + b;', ' }'].join('\n');
const DOCS = ['--- a/README.md', '+++ b/README.md', '@@ -1,1 +1,2 @@', ' # Calc', '+Adds numbers correctly.'].join('\n');
const BAD = ['--- a/src/math.ts', '+++ b/src/math.ts', '@@ -1,1 +1,1 @@', '-export function sub() {}', '+export function sub(a: number) {}'].join('\n');

const DEV_GUIDE = { agent: 'dev-guide', tools: ['workspace', 'js'] };
const PODCAST = { agent: 'podcast', tools: ['docs'] };
const SURVEY = { agent: 'survey', tools: ['docs'] };

const devGuide = (model: string) =>
  ferryFile([
    [user('Why does add() return the wrong result?'), gen('Let me look at the files.', 'tool-call'), toolCall('c1', { op: 'write', path: 'src/math.ts', content: ADD }), toolCall('c2', { op: 'write', path: 'README.md', content: '# Calc\n' })],
    [toolResult('c1', true, { path: 'src/math.ts', created: true, characters: ADD.length, lines: 3 }), toolResult('c2', true, { path: 'README.md', created: true })],
    [toolCall('c3', { op: 'list' }), toolResult('c3', true, { path: '/', total: 3, entries: [{ path: 'README.md', size: 7 }, { path: 'src/math.ts', size: ADD.length }, { path: 'test/math.test.ts', size: 120 }] })],
    [toolCall('c4', { op: 'patch', diff: FIX }), toolResult('c4', true, { applied: true, files: [{ path: 'src/math.ts', status: 'modified', added: 1, removed: 1 }] })],
    [gen(`The sign is fixed. The README could say so:\n\n\`\`\`diff\n${DOCS}\n\`\`\`\n\nAnd a helper:\n\n\`\`\`diff\n${BAD}\n\`\`\``, 'tool-call'), toolCall('check-1', { op: 'patch', diff: DOCS, dry_run: true }), toolCall('check-2', { op: 'patch', diff: BAD, dry_run: true })],
    [toolResult('check-1', true, { applied: false, applies: true, files: [] }), toolResult('check-2', false, 'Hunk 1 of the diff for "src/math.ts" (@@ -1,1 @@) does not match the file.')],
  ], DEV_GUIDE, model);

const podcastSteps = (): SessionEvent[][] => [
    [
      user('A short episode on agents that run on your phone'),
      gen('Alex: Why would an agent run on my phone at all?\nSam: Privacy first: your notes never leave it.'),
    ],
    [
      reply(renderScript(
        { title: 'Agents in your pocket', segments: [{ title: 'Why on the device', summary: '', points: [] }, { title: 'Moving to the cloud', summary: '', points: [] }] },
        [{ name: 'Alex', role: 'host: curious, asks the questions a listener would ask' }, { name: 'Sam', role: 'expert guest: explains with concrete examples' }],
        [
          [{ speaker: 'Alex', text: 'Why would an agent run on my phone at all?' }, { speaker: 'Sam', text: 'Privacy first: your notes never leave it.' }, { speaker: 'Alex', text: 'And when the phone is slow?' }, { speaker: 'Sam', text: 'Then the session moves, checkpoint and all.' }],
          [{ speaker: 'Sam', text: 'The cloud worker picks up from the last checkpoint.' }, { speaker: 'Alex', text: 'Without losing the stream?' }, { speaker: 'Sam', text: 'Without losing a token.' }, { speaker: 'Alex', text: 'Neat.' }],
        ],
      )),
    ],
  ];
const podcast = (model: string) => ferryFile(podcastSteps(), PODCAST, model);

const survey = (model: string) =>
  ferryFile([
    [
      user('Survey on-device language models'),
      gen('WebGPU engines are fastest where available [2, 3]; CPU engines are the fallback [1].'),
    ],
    [
      reply(`# On-device language models\n\n## 1. Background\n\nSmall models now fit in a phone's memory [1], and quantisation shrinks them further [2].\n\n## 2. Engines\n\nWebGPU engines are fastest where available [2, 3]; CPU engines are the fallback [1].\n\n## References\n\n${bibliography(
        [
          { title: 'Tiny transformers', authors: 'A. Author', year: '2024', text: '', url: '' },
          { title: 'Quantisation in practice', authors: 'B. Writer', year: '2025', text: '', url: 'https://example.org/quant' },
          { title: 'WebGPU inference', authors: '', year: '2025', text: '', url: '' },
        ],
        [1, 2, 3],
      )}\n`),
    ],
  ], SURVEY, model);

afterAll(disposeEngine);

/** Both devices import the same files (written with the same generated model): each is written once. */
const written = new Map<string, Promise<Uint8Array>>();
function once(name: string, write: () => Promise<Uint8Array>): Promise<Uint8Array> {
  let file = written.get(name);
  if (!file) written.set(name, (file = write()));
  return file;
}

for (const device of devices) {
  describe(`the per-template panels on a ${device.name}`, () => {
    let rig: UiRig;
    let page: Page;
    let work: string;
    const press = (l: Locator): Promise<void> => rig.press(l);
    const screen = (name: string): Promise<void> => rig.screen(name);
    const transcriptReady = (): Promise<void> => rig.transcriptReady();

    const model = (): string => path.join(work, 'tiny.gguf');

    /** Imports a .ferry file through the UI; the session is catalogued under `template` (what its screen says). */
    const importSession = (name: string, bytes: Uint8Array, template: string): Promise<void> => importThroughUi(rig, name, bytes, template);
    const openPanel = (name: string): Promise<void> => openPanelTab(rig, name);

    beforeAll(async () => {
      rig = await startUi(device, 'panels');
      ({ page, work } = rig);
      // Short replies: the runs here check which agent ran, Retry's branch and a survey's parts, none a reply's length.
      await saveReplyLength(page, press, 32);
    });

    afterAll(() => rig?.close());

    test('the model comes from a GGUF picked from disk (the relay\'s generated model)', async () => {
      await press(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }));
      await page.getByTestId('pick-model').setInputFiles(model());
      await expect.poll(() => page.getByTestId('model-in-use').textContent(), { timeout: 60_000 }).toMatch(/tiny\.gguf/);
    });

    test('the Workspace panel shows the files the workspace tool holds and the proposed diffs, with Apply on those not applied; the checkpoint tree names what each tool step did', async () => {
      await importSession('dev-guide.ferry', await once('dev-guide', () => devGuide(model())), 'Dev guide');
      await openPanel('Workspace');
      const panel = page.getByTestId('workspace-panel');
      await panel.waitFor();
      expect(await panel.getByTestId('file-tree').getByRole('button').allTextContents()).toEqual(['math.ts', 'math.test.ts', 'README.md']);
      // The first file opens; the listing-only file says its content was never seen.
      expect(await panel.getByTestId('file-path').textContent()).toBe('src/math.ts');
      expect(await panel.getByTestId('file-content').textContent()).toContain('return a + b;');
      // Keyboard: focus a file and press Enter.
      await panel.getByRole('button', { name: 'Open README.md' }).focus();
      await page.keyboard.press('Enter');
      await expect.poll(() => panel.getByTestId('file-path').textContent()).toBe('README.md');
      expect(await panel.getByTestId('file-content').textContent()).toBe('# Calc\n');
      await press(panel.getByRole('button', { name: 'Open test/math.test.ts' }));
      await panel.getByTestId('file-unknown').waitFor();

      const diffs = panel.getByTestId('proposed-diff');
      expect(await diffs.evaluateAll((els) => els.map((e) => e.getAttribute('data-status')))).toEqual(['applied', 'applies', 'does-not-apply']);
      expect(await diffs.nth(0).getByTestId('apply-diff').count()).toBe(0);
      expect(await diffs.nth(1).textContent()).toMatch(/README\.md.*Checked: applies cleanly.*Apply/s);
      expect(await diffs.nth(2).textContent()).toMatch(/Does not apply.*does not match the file/s);
      expect(await panel.getByTestId('apply-diff').count()).toBe(2);
      await screen('panel-workspace');

      // The checkpoint tree names what each tool step did.
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      const rows = page.getByTestId('tree-node');
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(7);
      const summaries = (await rows.locator('.summary').allTextContents()).map((t) => t.trim());
      expect(summaries).toEqual(expect.arrayContaining(['workspace: listed', 'workspace: patched src/math.ts', 'workspace: checked README.md, src/math.ts', 'Tool results (some failed)']));
      expect(rig.pageErrors).toEqual([]);
    });

    test('a checkpoint chosen in the tree shows the workspace as it was then, read only and with the session unchanged; "Back to the latest" shows it now', async () => {
      // The dev-guide session imported above, on its Checkpoints tab: the step where the first two writes landed.
      const rows = page.getByTestId('tree-node');
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(7);
      const before = await rows.count();
      const head = await rows.first().getAttribute('data-id');
      const row = rows.filter({ hasText: 'Tool results (ok)' });
      const step = /step (\d+)/.exec((await row.locator('.meta').textContent()) ?? '')?.[1];
      expect(step).toBeDefined();
      await press(row);
      await press(page.getByTestId('view-at-checkpoint'));
      await expect.poll(() => page.url(), { timeout: 30_000 }).toMatch(/\/panel\/[0-9a-f]{64}$/);
      const banner = page.getByTestId('as-at-checkpoint');
      await expect.poll(() => banner.textContent(), { timeout: 30_000 }).toMatch(new RegExp(`As at checkpoint ${step} / .*the\\s+workspace as it was then\\.\\s+The session itself is unchanged`, 's'));
      const panel = page.getByTestId('workspace-panel');
      const files = () => panel.getByTestId('file-tree').getByRole('button').allTextContents();
      expect(await files()).toEqual(['math.ts', 'README.md']);
      expect(await panel.getByTestId('file-content').textContent()).toContain('return a - b;');
      // Read only: nothing is added or applied at a past checkpoint.
      expect(await panel.getByTestId('add-files-button').count()).toBe(0);
      expect(await panel.getByTestId('apply-diff').count()).toBe(0);
      await screen('panel-workspace-at-checkpoint');

      await press(page.getByTestId('back-to-latest'));
      await expect.poll(() => page.url(), { timeout: 30_000 }).toMatch(/\/panel$/);
      await expect.poll(files, { timeout: 30_000 }).toEqual(['math.ts', 'math.test.ts', 'README.md']);
      expect(await panel.getByTestId('file-content').textContent()).toContain('return a + b;');
      expect(await page.getByTestId('as-at-checkpoint').count()).toBe(0);
      // Reading changed nothing: the same checkpoints, the same head.
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(before);
      expect(await rows.first().getAttribute('data-id')).toBe(head);
      expect(await rows.first().textContent()).toContain('main (head)');
      expect(rig.pageErrors).toEqual([]);
    });

    test('the Script panel shows speakers and segments; Play reads it aloud, or says why it cannot', async () => {
      await importSession('podcast.ferry', await once('podcast', () => podcast(model())), 'Podcast');
      await openPanel('Script');
      const panel = page.getByTestId('script-panel');
      await panel.waitFor();
      expect(await panel.getByRole('heading', { level: 3 }).textContent()).toBe('Script: Agents in your pocket');
      expect(await panel.getByTestId('speakers').locator('li strong').allTextContents()).toEqual(['Alex', 'Sam']);
      expect(await panel.getByTestId('segment').count()).toBe(2);
      expect(await panel.getByTestId('segment').nth(1).locator('li').count()).toBe(4);
      expect(await panel.getByTestId('segment').nth(0).locator('li').nth(1).textContent()).toMatch(/Sam:\s*Privacy first/);
      const voices = await page.evaluate(() => ('speechSynthesis' in globalThis ? speechSynthesis.getVoices().length : -1));
      const play = panel.getByTestId('play-script');
      if (voices <= 0) {
        expect(await play.isDisabled()).toBe(true);
        expect(await panel.getByTestId('play-reason').textContent()).toMatch(voices < 0 ? /no Web Speech API/ : /no speech voices/);
      } else {
        expect(await play.isDisabled()).toBe(false);
      }
      await screen('panel-script');
    });

    test('Play speaks every line with a voice per speaker (a stand-in speechSynthesis with two voices)', async () => {
      // Headless Chromium has no voices: a page with a recording speechSynthesis shows the path a real browser takes.
      const spoken = await page.evaluate(async () => {
        const said: { text: string; voice: string | undefined }[] = [];
        const voices = [{ name: 'Voice A', lang: 'en-US' }, { name: 'Voice B', lang: 'en-GB' }];
        const fake = new EventTarget() as EventTarget & Record<string, unknown>;
        Object.assign(fake, {
          getVoices: () => voices,
          cancel: () => undefined,
          speak: (u: SpeechSynthesisUtterance) => {
            said.push({ text: u.text, voice: (u.voice as { name: string } | null)?.name });
            queueMicrotask(() => (u.onstart as (() => void) | null)?.());
            setTimeout(() => (u.onend as (() => void) | null)?.(), 10);
          },
        });
        Object.defineProperty(globalThis, 'speechSynthesis', { value: fake, configurable: true });
        // The real utterance accepts only the browser's own voices.
        class Utterance {
          voice: unknown = null;
          lang = '';
          onstart: (() => void) | null = null;
          onend: (() => void) | null = null;
          onerror: (() => void) | null = null;
          constructor(readonly text: string) {}
        }
        Object.defineProperty(globalThis, 'SpeechSynthesisUtterance', { value: Utterance, configurable: true });
        (globalThis as unknown as { __said: typeof said }).__said = said;
        return true;
      });
      expect(spoken).toBe(true);
      // Reopen the panel so it picks up the stand-in.
      await press(page.getByRole('link', { name: 'Chat' }));
      await openPanel('Script');
      const play = page.getByTestId('play-script');
      await expect.poll(() => play.isDisabled()).toBe(false);
      expect(await page.getByTestId('speakers').textContent()).toMatch(/Alex.*voice: Voice A.*Sam.*voice: Voice B/s);
      await press(play);
      await expect.poll(() => page.evaluate(() => (globalThis as unknown as { __said: unknown[] }).__said.length)).toBe(8);
      const said = await page.evaluate(() => (globalThis as unknown as { __said: { text: string; voice: string }[] }).__said);
      expect(said[0]).toEqual({ text: 'Why would an agent run on my phone at all?', voice: 'Voice A' });
      expect(said[1]).toEqual({ text: 'Privacy first: your notes never leave it.', voice: 'Voice B' });
      await page.getByTestId('play-script').waitFor();
    });

    test('the Draft panel shows the outline, sections and bibliography, and exports the draft as Markdown', async () => {
      await importSession('survey.ferry', await once('survey', () => survey(model())), 'Survey');
      // The transcript shows the draft the agent sent, after the section the model wrote last.
      expect(await page.getByTestId('agent-message').allTextContents()).toEqual([expect.stringContaining('CPU engines are the fallback [1].')]);
      expect(await page.getByTestId('agent-reply').getByRole('heading', { level: 1 }).textContent()).toBe('On-device language models');
      await openPanel('Draft');
      const panel = page.getByTestId('draft-panel');
      await panel.waitFor();
      expect(await panel.getByTestId('outline').getByRole('button').allTextContents()).toEqual(['Background', 'Engines']);
      expect(await panel.getByTestId('draft-section').count()).toBe(2);
      expect(await panel.getByTestId('draft-section').nth(1).textContent()).toMatch(/Cites \[1\], \[2\], \[3\]/);
      expect(await panel.getByTestId('bibliography').locator('li').allTextContents()).toEqual([
        '[1] A. Author (2024). Tiny transformers.',
        '[2] B. Writer (2025). Quantisation in practice. https://example.org/quant',
        '[3] (2025). WebGPU inference.',
      ]);
      // The outline moves focus to its section.
      await press(panel.getByTestId('outline').getByRole('button', { name: 'Engines' }));
      await expect.poll(() => page.evaluate(() => document.activeElement?.textContent)).toBe('2. Engines');
      const download = page.waitForEvent('download');
      await press(panel.getByTestId('export-markdown'));
      expect((await download).suggestedFilename()).toBe('On-device-language-models.md');
      const file = path.join(work, 'draft.md');
      await (await download).saveAs(file);
      const md = await readFile(file, 'utf8');
      expect(md).toMatch(/^# On-device language models\n\n## 1\. Background\n\nSmall models .*\n\n## 2\. Engines\n/);
      expect(md).toContain('## References\n\n[1] A. Author (2024). Tiny transformers.\n[2] B. Writer');
      await screen('panel-draft');
    });

    test('a message in an imported dev-guide or podcast session runs that template\'s agent; a session without an agent is read, not run', async () => {
      for (const [title, parts] of [['dev guide', DEV_GUIDE], ['podcast', PODCAST]] as const) {
        await press(page.getByRole('link', { name: 'Sessions', exact: true }));
        await press(page.getByRole('link', { name: title, exact: true }));
        await transcriptReady();
        expect(await page.getByTestId('session-template').textContent()).toBe(parts === DEV_GUIDE ? 'Dev guide' : 'Podcast');
        const replies = await page.getByTestId('agent-message').count();
        const box = page.getByLabel('Message');
        await box.fill('Carry on, please.');
        await box.press('Enter');
        await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 120_000 }).toBeGreaterThan(replies);
        await expect.poll(() => page.getByTestId('live-turn').count(), { timeout: 120_000 }).toBe(0);
        expect(await page.getByTestId('error-toast').count()).toBe(0);
        // The session's newest checkpoint was written by the template's own agent, which ran at least one step.
        const download = page.waitForEvent('download');
        await press(page.getByRole('button', { name: 'Export .ferry' }));
        const saved = path.join(work, `${title}-after.ferry`);
        await (await download).saveAs(saved);
        const exported = new Uint8Array(await readFile(saved));
        const head = await headAgent(exported);
        expect(head.agent).toBe(await componentId(built(parts.agent)));
        expect(head.steps).toBeGreaterThan(0);
      }

      // Written without an agent: catalogued as such, readable (its panel still found from its events), not run.
      await importSession('no-agent.ferry', await once('no-agent', () => ferryFile(podcastSteps())), 'Unknown agent');
      expect(await page.getByTestId('agent-missing').textContent()).toMatch(/not one this version of Ferry has.*read, fork, export and share it/);
      expect(await page.getByLabel('Message').isDisabled()).toBe(true);
      expect(await page.getByTestId('panel-tab').textContent()).toBe('Script');
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      expect(await page.getByTestId('session-row').filter({ hasText: 'no agent' }).textContent()).toContain('Unknown agent');
      await screen('sessions-unknown-agent');
    });

    test('Retry regenerates the last reply with the real agent, keeping the old reply on a "main-try1" branch', async () => {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Dev guide/));
      await page.getByLabel(/^Title/).fill('Retry me');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      expect(await page.getByTestId('retry').count()).toBe(0);
      const box = page.getByLabel('Message');
      await box.fill('explain the workspace');
      await box.press('Enter');
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 90_000 }).toBeGreaterThan(0);
      await expect.poll(() => page.getByTestId('live-turn').count(), { timeout: 90_000 }).toBe(0);
      const replies = await page.getByTestId('agent-message').count();

      await press(page.getByTestId('retry'));
      await expect.poll(() => page.getByTestId('toast').last().textContent(), { timeout: 30_000 }).toContain('kept on branch "main-try1"');
      await expect.poll(() => page.getByTestId('live-turn').count(), { timeout: 90_000 }).toBe(0);
      await expect.poll(() => page.getByTestId('agent-message').count(), { timeout: 90_000 }).toBe(replies);
      expect(await page.getByTestId('user-message').allTextContents()).toEqual([expect.stringContaining('explain the workspace')]);
      // The model picked from disk is named by its file name, in the transcript and in "Where it runs".
      expect(await page.getByTestId('agent-message').first().textContent()).toMatch(/Agent · wllama · tiny\.gguf · \d+ tokens/);
      await press(page.getByTestId('where-it-runs').locator('summary'));
      await page.getByTestId('this-device').waitFor({ timeout: 60_000 });
      expect(await page.getByTestId('this-device').textContent()).toMatch(/Model\s*tiny\.gguf/);
      await press(page.getByTestId('where-it-runs').locator('summary'));
      expect(await page.getByTestId('current-branch').textContent()).toBe('main');
      // The dev-guide session's own panel: an empty workspace (the tiny model's gibberish calls no tool).
      await openPanel('Workspace');
      await page.getByTestId('workspace-panel').waitFor();
      await screen('panel-workspace-empty');
      await press(page.getByRole('link', { name: 'Checkpoints' }));
      await expect.poll(() => page.getByText('main-try1').count()).toBeGreaterThan(0);
      expect(rig.pageErrors).toEqual([]);
    });

    test('a survey kept on this device runs its parts here, one after another, with a progress bar, and ends with its reply', async () => {
      await press(page.getByRole('link', { name: 'Sessions', exact: true }));
      await press(page.getByLabel(/Survey/));
      await page.getByLabel(/^Title/).fill('Harbour survey');
      await press(page.getByRole('button', { name: 'Create session' }));
      await expect.poll(() => page.url(), { timeout: 60_000 }).toMatch(/#\/s\/[0-9a-f]{32}$/);
      await transcriptReady();
      const box = page.getByLabel('Message');
      await box.fill(JSON.stringify({ topic: 'working harbours', sources: generatedSources(3) }));
      await box.press('Enter');
      // Privacy "this device" (the default): the three parts run here, and the live turn counts them.
      const progress = () => page.getByTestId('live-children-done').textContent({ timeout: 50 }).catch(() => '');
      await expect.poll(progress, { timeout: 120_000, interval: 50 }).toMatch(/^Parts: [0-2] of 3 done$/);
      expect(await page.getByTestId('live-children-here').textContent()).toBe('They run on this device, one after another.');
      expect(await page.locator('[data-testid="live-children"] progress').getAttribute('max')).toBe('3');
      await screen('live-parts-here');
      // The tiny model's notes do not parse: the survey ends saying so, in the transcript.
      await expect.poll(() => page.getByTestId('agent-reply').allTextContents(), { timeout: 120_000 }).toEqual([expect.stringContaining('No source could be read')]);
      expect(rig.pageErrors).toEqual([]);
    });
  });
}
