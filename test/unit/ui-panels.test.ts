/**
 * The per-template panels' parsers (src/ui/panels): what the dev-guide workspace, the podcast script and the survey
 * draft panels show is read from the session's events, from the components' real output formats, and survives
 * malformed model output (shows what could be read, never throws). Also "Retry"'s choice of message and branch.
 */
import { describe, expect, test } from 'vitest';
import type { SessionEvent } from '../../src/core/session/index.ts';
import type { TranscriptStep } from '../../src/core/session/index.ts';
import { applyDiff, diffBlocks, diffPaths, fileTree, workspaceView, applyRequest } from '../../src/ui/panels/workspace-view.ts';
import { assignVoices, latestScript, parseScript } from '../../src/ui/panels/script-view.ts';
import { citedNumbers, draftFileName, draftMarkdown, latestDraft, parseDraft } from '../../src/ui/panels/draft-view.ts';
import { panelFor, replyTexts } from '../../src/ui/panels/index.ts';
import { retryBranchName, retryPoint } from '../../src/ui/retry.ts';
import { replyAddition, replyViews } from '../../src/ui/replies.ts';
import { renderScript } from '../../components/podcast/script.ts';
import { bibliography } from '../../components/survey/draft.ts';

let at = 1;
const call = (callId: string, args: unknown, tool = 'workspace'): SessionEvent => ({ type: 'tool-call', callId, tool, args: typeof args === 'string' ? args : JSON.stringify(args), at: at++ });
const result = (callId: string, ok: boolean, output: unknown): SessionEvent => ({ type: 'tool-result', callId, ok, output: typeof output === 'string' ? output : JSON.stringify(output), at: at++ });
const gen = (text: string): SessionEvent => ({ type: 'generation', tokens: [1], text, engine: { id: 'scripted', kind: 'scripted', model: 'm' }, timings: { promptMs: 0, generateMs: 0 }, finish: 'stop', at: at++ });
const user = (text: string): SessionEvent => ({ type: 'user', text, at: at++ });
const reply = (text: string): SessionEvent => ({ type: 'reply', text, at: at++ });
const step = (id: string, events: SessionEvent[]): TranscriptStep => ({ id: id.padEnd(64, '0'), at: at++, events });

const DIFF = ['--- a/src/add.ts', '+++ b/src/add.ts', '@@ -1,3 +1,3 @@', ' export function add(a: number, b: number) {', '-  return a - b;', '+  return a + b;', ' }'].join('\n');
const ADD_TS = 'export function add(a: number, b: number) {\n  return a - b;\n}\n';

describe('the workspace panel', () => {
  test('replays writes, reads, listings, moves, deletes and applied patches into the file tree', () => {
    const view = workspaceView([
      call('1', { op: 'write', path: './src//add.ts', content: ADD_TS }), result('1', true, { path: 'src/add.ts', created: true }),
      call('2', { op: 'write', path: 'README.md', content: '# Demo\n' }), result('2', true, {}),
      call('3', { op: 'write', path: 'README.md', content: 'More.\n', append: true }), result('3', true, {}),
      call('4', { op: 'list' }), result('4', true, { path: '/', total: 3, entries: [{ path: 'src/add.ts', size: 1 }, { path: 'docs/guide.md', size: 9 }, { path: 'lib/', files: 2 }] }),
      call('5', { op: 'read', path: 'notes.txt' }), result('5', true, { path: 'notes.txt', lines: 2, from: 1, to: 2, content: 'a\nb' }),
      call('6', { op: 'read', path: 'big.txt' }), result('6', true, { path: 'big.txt', lines: 900, from: 1, to: 400, content: 'x', next_offset: 401 }),
      call('7', { op: 'move', from: 'notes.txt', to: 'docs/notes.txt' }), result('7', true, { moved: 'notes.txt', to: 'docs/notes.txt' }),
      call('8', { op: 'write', path: 'tmp.txt', content: 'x' }), result('8', true, {}),
      call('9', { op: 'delete', path: 'tmp.txt' }), result('9', true, { deleted: 'tmp.txt' }),
      call('10', { op: 'write', path: 'refused.txt', content: 'x' }), result('10', false, 'Too big.'),
      call('11', { op: 'patch', diff: DIFF }), result('11', true, { applied: true, files: [{ path: 'src/add.ts', status: 'modified' }] }),
    ]);
    const files = Object.fromEntries(view.files.map((f) => [f.path, f.content]));
    expect(files).toEqual({
      'README.md': '# Demo\nMore.\n',
      'big.txt': null,
      'docs/guide.md': null,
      'docs/notes.txt': 'a\nb\n',
      'src/add.ts': 'export function add(a: number, b: number) {\n  return a + b;\n}\n',
    });
    expect(view.calls).toBe(11);
    expect(view.diffs).toMatchObject([{ status: 'applied', paths: ['src/add.ts'], from: 'tool-call' }]);
  });

  test('collects diffs proposed in replies and checked by dry runs; a failed check keeps its reason', () => {
    const broken = DIFF.replace('return a - b;', 'return a * b;');
    const view = workspaceView([
      call('1', { op: 'write', path: 'src/add.ts', content: ADD_TS }), result('1', true, {}),
      gen(`Fix the sign:\n\n\`\`\`diff\n${DIFF}\n\`\`\`\nand also\n\`\`\`patch\n${broken}\n\`\`\``),
      call('check-1', { op: 'patch', diff: `${DIFF}\n`, dry_run: true }), result('check-1', true, { applied: false, applies: true, files: [] }),
      call('check-2', { op: 'patch', diff: broken, dry_run: true }), result('check-2', false, 'Hunk 1 of the diff for "src/add.ts" does not match the file.'),
    ]);
    expect(view.diffs.map((d) => [d.status, d.from, d.problem])).toEqual([
      ['applies', 'reply', null],
      ['does-not-apply', 'reply', 'Hunk 1 of the diff for "src/add.ts" does not match the file.'],
    ]);
    // The file is unchanged: nothing was applied.
    expect(view.files[0]!.content).toBe(ADD_TS);
  });

  test('survives malformed model output: bad JSON, unknown ops, results without calls, diffs that do not parse', () => {
    const events = [
      call('1', '{not json'), result('1', true, 'whatever'),
      call('2', { op: 'write', path: '../etc/passwd', content: 'x' }), result('2', true, {}),
      call('3', { op: 'explode' }), result('3', true, '{}'),
      call('4', { op: 'list' }), result('4', true, 'not json'),
      call('5', { op: 'read', path: 'a' }), result('5', true, '[1,2]'),
      call('6', { op: 'patch', diff: '@@ garbage' }), result('6', true, {}),
      result('orphan', true, '{}'),
      call('7', [1, 2, 3]), call('8', { op: 'write', path: 'x.ts', content: 'x' }, 'js'), result('8', true, '{}'),
      gen('```diff\nno hunks here\n```\n```diff\n@@ -1 +1 @@\n-a\n+b'),
    ];
    const view = workspaceView(events);
    expect(view.files).toEqual([]);
    expect(view.diffs.map((d) => d.status)).toEqual(['applied', 'unchecked']);
    expect(() => workspaceView([{ type: 'generation' } as unknown as SessionEvent])).not.toThrow();
  });

  test('diff helpers: blocks, paths, applying, the tree and the apply request', () => {
    expect(diffBlocks('```diff\n@@ -1 +1 @@\n-a\n+b\n```')).toEqual(['@@ -1 +1 @@\n-a\n+b\n']);
    expect(diffPaths('--- a/x.ts\n+++ b/x.ts\n--- a/gone.ts\n+++ /dev/null\n--- /dev/null\n+++ b/new.ts')).toEqual(['x.ts', 'gone.ts', 'new.ts']);
    expect(applyDiff(new Map([['src/add.ts', ADD_TS]]), DIFF)?.get('src/add.ts')).toContain('a + b');
    expect(applyDiff(new Map([['src/add.ts', null]]), DIFF)).toBeUndefined();
    expect(applyDiff(new Map(), '--- /dev/null\n+++ b/new.ts\n@@ -0,0 +1 @@\n+hello')?.get('new.ts')).toBe('hello\n');
    expect(applyDiff(new Map(), 'not a diff')).toBeUndefined();
    expect(fileTree(['src/b.ts', 'README.md', 'src/a/c.ts'])).toEqual([
      { name: 'src', path: 'src', depth: 0, kind: 'folder' },
      { name: 'a', path: 'src/a', depth: 1, kind: 'folder' },
      { name: 'c.ts', path: 'src/a/c.ts', depth: 2, kind: 'file' },
      { name: 'b.ts', path: 'src/b.ts', depth: 1, kind: 'file' },
      { name: 'README.md', path: 'README.md', depth: 0, kind: 'file' },
    ]);
    expect(applyRequest(`\n${DIFF}\n\n`)).toContain(`\`\`\`diff\n${DIFF}\n\`\`\``);
  });
});

describe('the script panel', () => {
  const speakers = [{ name: 'Alex', role: 'host: curious' }, { name: 'Sam', role: 'expert guest' }];
  const outline = { title: 'Tiny models', segments: [{ title: 'Why small', summary: '', points: [] }, { title: 'What next', summary: '', points: [] }] };
  const real = renderScript(outline, speakers, [
    [{ speaker: 'Alex', text: 'Why would anyone want a tiny model?' }, { speaker: 'Sam', text: 'Because it runs on your phone.' }],
    [{ speaker: 'Sam', text: 'Next, offline agents.' }, { speaker: 'Alex', text: 'Sounds good.' }],
  ]);

  test('reads the podcast agent\'s rendered script: title, cast with roles, segments with lines', () => {
    expect(parseScript(real)).toEqual({
      title: 'Tiny models',
      speakers: [{ name: 'Alex', role: 'host: curious' }, { name: 'Sam', role: 'expert guest' }],
      segments: [
        { title: 'Why small', lines: [{ speaker: 'Alex', text: 'Why would anyone want a tiny model?' }, { speaker: 'Sam', text: 'Because it runs on your phone.' }] },
        { title: 'What next', lines: [{ speaker: 'Sam', text: 'Next, offline agents.' }, { speaker: 'Alex', text: 'Sounds good.' }] },
      ],
    });
  });

  test('malformed output: shows what could be read; speakers missing from the cast join it; never throws', () => {
    const s = parseScript('Sure! Here is a script\n## Intro\nALEX (laughs): hi there\n(music)\nJo: hello\n## Empty\nno lines\n#');
    expect(s.title).toBe('');
    expect(s.speakers.map((x) => x.name)).toEqual(['ALEX', 'Jo']);
    expect(s.segments).toEqual([{ title: 'Intro', lines: [{ speaker: 'ALEX', text: 'hi there' }, { speaker: 'Jo', text: 'hello' }] }]);
    expect(parseScript('x\u0000y ## : : **').segments).toEqual([]);
    expect(parseScript(undefined as unknown as string).segments).toEqual([]);
    expect(latestScript(['gibberish', real, 'more gibberish'])?.title).toBe('Tiny models');
    expect(latestScript(['nothing'])).toBeNull();
  });

  test('assigns a voice per speaker, in the script\'s language first, round robin when there are fewer voices', () => {
    const voices = [{ name: 'de', lang: 'de-DE' }, { name: 'en1', lang: 'en-US' }, { name: 'en2', lang: 'en-GB' }];
    const cast = [...speakers, { name: 'Kim', role: '' }];
    expect([...assignVoices(cast, voices, 'en')].map(([n, v]) => `${n}:${v.name}`)).toEqual(['Alex:en1', 'Sam:en2', 'Kim:en1']);
    expect(assignVoices(cast, [{ name: 'fr', lang: 'fr-FR' }], 'en').get('Sam')?.name).toBe('fr');
    expect(assignVoices(cast, [], 'en').size).toBe(0);
  });
});

describe('the draft panel', () => {
  const sources = [{ title: 'Paper one', authors: 'A. Author', year: '2021', text: '', url: '' }, { title: 'Paper two', authors: '', year: '', text: '', url: 'https://example.org/2' }];
  const real = `# Tiny agents\n\n## 1. Background\n\nModels got small [1].\n\n## 2. Results\n\nThey run offline [1, 2] and fast [2–3].\n\n## References\n\n${bibliography(sources, [1, 2])}\n`;

  test('reads the survey agent\'s draft: title, sections with citations, bibliography; exports it as Markdown', () => {
    const d = parseDraft(real);
    expect(d.title).toBe('Tiny agents');
    expect(d.sections).toEqual([
      { heading: 'Background', text: 'Models got small [1].', cites: [1] },
      { heading: 'Results', text: 'They run offline [1, 2] and fast [2–3].', cites: [1, 2, 3] },
    ]);
    expect(d.references).toEqual([{ n: 1, text: 'A. Author (2021). Paper one.' }, { n: 2, text: 'Paper two. https://example.org/2' }]);
    expect(parseDraft(draftMarkdown(d))).toEqual(d);
    expect(draftFileName(d)).toBe('Tiny-agents.md');
    expect(draftFileName({ ...d, title: '///' })).toBe('survey-draft.md');
  });

  test('malformed output: partial drafts, stray text and odd citations are read as far as they go', () => {
    const d = parseDraft('intro text\n## Only section\nText [9999] [x] [3-1] [2-200]\n## Bibliography\ncontinued line\n[1] Ref\n  more of ref 1\n- [2] Second');
    expect(d.title).toBe('');
    expect(d.sections).toEqual([{ heading: 'Only section', text: 'Text [9999] [x] [3-1] [2-200]', cites: [2, 3, 9999] }]);
    expect(d.references).toEqual([{ n: 1, text: 'Ref more of ref 1' }, { n: 2, text: 'Second' }]);
    expect(citedNumbers('[0] [1–2]')).toEqual([1, 2]);
    expect(parseDraft(42 as unknown as string).sections).toEqual([]);
    expect(draftMarkdown({ title: '', sections: [], references: [] })).toBe('# Survey draft\n');
    expect(latestDraft(['no', real, 'no'])?.title).toBe('Tiny agents');
    expect(latestDraft(['no'])).toBeNull();
  });
});

describe('choosing the panel and retrying', () => {
  test('the template decides; a session of unknown template gets the panel its events call for', () => {
    expect(panelFor('dev-guide', [])).toBe('workspace');
    expect(panelFor('podcast', [])).toBe('script');
    expect(panelFor('survey', [])).toBe('draft');
    expect(panelFor('assistant', [])).toBe('notes');
    expect(panelFor('unknown', [step('a', [call('1', { op: 'list' })])])).toBe('workspace');
    expect(panelFor('unknown', [step('a', [gen('## 1. Intro\nAlex: hi\nSam: hello')])])).toBe('script');
    expect(panelFor('unknown', [step('a', [gen('# T\n## 1. One\nText [1]\n## References\n[1] Ref')])])).toBe('draft');
    expect(panelFor('unknown', [step('a', [gen('plain reply')])])).toBeNull();
    // A survey's draft is assembled by the agent and sent as its reply, not generated in one piece.
    expect(panelFor('unknown', [step('a', [gen('section text [1]'), reply('# T\n## 1. One\nText [1]\n## References\n[1] Ref')])])).toBe('draft');
  });

  test('the panels read the agent\'s replies with its generations, in order', () => {
    const draft = '# T\n## 1. One\nText [1]\n## References\n[1] Ref';
    const steps = [step('a', [user('go'), gen('section text [1]')]), step('b', [reply(draft)])];
    expect(replyTexts(steps)).toEqual(['section text [1]', draft]);
    expect(latestDraft(replyTexts(steps))?.references).toEqual([{ n: 1, text: 'Ref' }]);
  });

  test('Retry resends the last message whose reply exists, and keeps the old reply on a fresh branch', () => {
    const steps = [step('a', [user('first'), gen('one')]), step('b', [user('second')]), step('c', [call('1', {}), result('1', true, '{}')]), step('d', [gen('two')])];
    expect(retryPoint(steps)).toEqual({ stepId: 'b'.padEnd(64, '0'), text: 'second' });
    expect(retryPoint(steps.slice(0, 3))).toBeNull();
    expect(retryPoint([step('x', [gen('no message')])])).toBeNull();
    expect(retryPoint([])).toBeNull();
    // A reply with no generation ("I am still drafting…") is a reply too.
    expect(retryPoint([step('e', [user('more'), reply('I am still drafting the survey.')])])).toEqual({ stepId: 'e'.padEnd(64, '0'), text: 'more' });
    expect(retryBranchName('main', ['main', 'main-try1'])).toBe('main-try2');
    expect(retryBranchName('b'.repeat(48), [])).toBe(`${'b'.repeat(40)}-try1`);
  });
});

describe('replies in the transcript', () => {
  test('a reply shows only what it adds to the generation it answers', () => {
    expect(replyAddition('The fix is below.\n', 'The fix is below.')).toBe('');
    expect(replyAddition('  The fix.', 'The fix.\n\n✓ Checked: the proposed diff applies cleanly to the workspace.')).toBe('✓ Checked: the proposed diff applies cleanly to the workspace.');
    expect(replyAddition('Section one [1].', '# Survey\n\n## 1. Intro\n\nSection one [1].')).toBe('# Survey\n\n## 1. Intro\n\nSection one [1].');
    expect(replyAddition('The answer.\n<tool_call>{"name": "x"}</tool_call>', 'The answer.')).toBe('');
    expect(replyAddition(null, 'No source could be read, so there is nothing to survey.')).toBe('No source could be read, so there is nothing to survey.');
    // An empty generation hides nothing ("(The model gave an empty answer.)" is the whole reply).
    expect(replyAddition('', '(The model gave an empty answer.)')).toBe('(The model gave an empty answer.)');
  });

  test('across steps: a reply builds on the last generation before it, and only one reply does', () => {
    const steps = [
      step('a', [user('fix add()'), gen('Use a + b.')]),
      step('b', [call('1', { op: 'patch', dry_run: true }), result('1', true, '{}')]),
      step('c', [reply('Use a + b.\n\n✓ Checked.'), reply('I will take new instructions when it is done.')]),
      step('d', [user('thanks'), gen('You are welcome.')]),
      step('e', [reply('You are welcome.')]),
    ];
    const views = replyViews(steps);
    expect([...views.keys()]).toEqual([steps[2]!.id, steps[4]!.id]);
    expect([...views.get(steps[2]!.id)!]).toEqual([[0, '✓ Checked.'], [1, 'I will take new instructions when it is done.']]);
    expect([...views.get(steps[4]!.id)!]).toEqual([[0, '']]);
    expect(replyViews([])).toEqual(new Map());
  });
});
