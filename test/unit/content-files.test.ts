/**
 * The readers for files a person adds to a workspace, and the host steps that carry content into a session: text
 * told from binary, paths sanitized, a .zip read within its limits (entry count, unpacked sizes checked before
 * anything inflates), whole additions held to the workspace's limits, and content cut into steps that fit.
 */
import { zipSync, strToU8 } from 'fflate';
import { describe, expect, it } from 'vitest';
import { docsAdds, hostOutcome, inSteps, workspaceWrites } from '../../src/browser/content/host-calls.ts';
import { CONTENT_LIMITS } from '../../src/browser/content/limits.ts';
import { workspacePath } from '../../src/browser/content/paths.ts';
import { pastedSource } from '../../src/browser/content/sources.ts';
import { decodeText } from '../../src/browser/content/text.ts';
import { readWorkspaceFiles, type PickedFile } from '../../src/browser/content/workspace-files.ts';
import { readZip } from '../../src/browser/content/zip.ts';
import { HOST_STEP_LIMITS } from '../../src/core/runtime/index.ts';
import type { SessionEvent } from '../../src/core/session/index.ts';
import { refusal } from '../support/refusal.ts';

const file = (path: string, content: string | Uint8Array): PickedFile => ({ path, file: new Blob([content as BlobPart]) });

const codeOf = async (work: () => unknown): Promise<string> => (await refusal(async () => work())).code;

describe('text or binary', () => {
  it('decodes UTF-8 (a BOM dropped) and a named charset; refuses NUL bytes and invalid UTF-8', () => {
    expect(decodeText(new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0xc3, 0xa9]))).toEqual({ ok: true, text: 'hé' });
    expect(decodeText(new Uint8Array([0x63, 0x61, 0x66, 0xe9]), 'iso-8859-1')).toEqual({ ok: true, text: 'café' });
    expect(decodeText(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1]))).toMatchObject({ ok: false, reason: expect.stringMatching(/binary/) });
    expect(decodeText(new Uint8Array([0x63, 0xff, 0xfe]))).toMatchObject({ ok: false, reason: expect.stringMatching(/not UTF-8/) });
    expect(decodeText(new Uint8Array([0x61]), 'no-such-charset')).toMatchObject({ ok: false, reason: expect.stringMatching(/cannot read/) });
  });
});

describe('workspace paths', () => {
  it('normalises paths and refuses escapes, control characters and over-long paths; skips what is never source', () => {
    expect(workspacePath('/proj//src/./a.ts')).toEqual({ ok: true, path: 'proj/src/a.ts' });
    expect(workspacePath('win\\style\\b.ts')).toEqual({ ok: true, path: 'win/style/b.ts' });
    expect(workspacePath('../etc/passwd')).toMatchObject({ ok: false, reason: expect.stringMatching(/"\.\."/) });
    expect(workspacePath('a/../../b')).toMatchObject({ ok: false });
    expect(workspacePath('bad\u0007name')).toMatchObject({ ok: false, reason: expect.stringMatching(/control characters/) });
    expect(workspacePath(`${'d/'.repeat(200)}x`)).toMatchObject({ ok: false, reason: expect.stringMatching(/characters long/) });
    expect(workspacePath('proj/node_modules/left-pad/index.js')).toEqual({ ok: false, reason: expect.stringMatching(/dependencies/), folder: 'proj/node_modules/' });
    expect(workspacePath('.git/HEAD')).toMatchObject({ ok: false, folder: '.git/' });
    expect(workspacePath('pics/.DS_Store')).toMatchObject({ ok: false, reason: expect.stringMatching(/macOS/) });
  });
});

describe('.zip files', () => {
  it('reads the entries, skipping folders and entries too large for a workspace file (by their declared size)', () => {
    const zip = zipSync({ 'src/': new Uint8Array(), 'src/main.ts': strToU8('console.log(1);\n'), 'huge.txt': new Uint8Array(CONTENT_LIMITS.fileChars * 4 + 1) });
    const { entries, skipped } = readZip(zip, 'p.zip');
    expect(entries.map((e) => e.path)).toEqual(['src/main.ts']);
    expect(new TextDecoder().decode(entries[0]!.bytes)).toBe('console.log(1);\n');
    expect(skipped).toEqual([{ path: 'huge.txt', reason: expect.stringMatching(/more than a workspace file may hold/) }]);
  });

  it('refuses an archive that lists too many entries or unpacks too large before inflating it, and one that is not a zip', async () => {
    const many: Record<string, Uint8Array> = {};
    for (let i = 0; i <= CONTENT_LIMITS.zipEntries; i++) many[`f${i}.txt`] = strToU8('x');
    expect(await codeOf(() => readZip(zipSync(many, { level: 0 }), 'many.zip'))).toBe('content/too-many-files');
    // A bomb: 40 entries of 2 MB of zeros each compress to almost nothing, but would unpack past the limit.
    const bomb: Record<string, Uint8Array> = {};
    for (let i = 0; i < 40; i++) bomb[`z${i}.txt`] = new Uint8Array(2 * 1024 * 1024 - 1);
    const packed = zipSync(bomb, { level: 1 });
    expect(packed.length).toBeLessThan(CONTENT_LIMITS.zipBytes / 100);
    expect(await codeOf(() => readZip(packed, 'bomb.zip'))).toBe('content/too-large');
    expect(await codeOf(() => readZip(strToU8('PK not really a zip'), 'fake.zip'))).toBe('content/bad-zip');
    expect(await codeOf(() => readZip(new Uint8Array(CONTENT_LIMITS.zipBytes + 1), 'big.zip'))).toBe('content/too-large');
  });
});

describe('files for a workspace', () => {
  it('reads a folder and a .zip into text files, and lists what it left out, with the reason', async () => {
    const zip = zipSync({ 'lib/util.ts': strToU8('export const u = 2;\n'), '__MACOSX/lib/._util.ts': strToU8('junk'), '../escape.ts': strToU8('nope') });
    const read = await readWorkspaceFiles([
      file('proj/src/main.ts', 'import { u } from "../lib/util";\n'),
      file('proj/logo.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0])),
      file('proj/node_modules/a/index.js', 'x'),
      file('proj/node_modules/b/index.js', 'y'),
      file('proj/vendor.zip', zip),
      file('bundle.zip', zip),
      file('proj/empty.txt', ''),
    ]);
    expect(read.files).toEqual([
      { path: 'lib/util.ts', content: 'export const u = 2;\n' },
      { path: 'proj/empty.txt', content: '' },
      { path: 'proj/src/main.ts', content: 'import { u } from "../lib/util";\n' },
    ]);
    expect(read.skipped).toEqual([
      { path: 'proj/logo.png', reason: expect.stringMatching(/binary/) },
      { path: 'proj/node_modules/', reason: expect.stringMatching(/dependencies/) },
      { path: 'proj/vendor.zip', reason: expect.stringMatching(/inside a folder/) },
      { path: '__MACOSX/', reason: expect.stringMatching(/macOS/) },
      { path: '../escape.ts', reason: expect.stringMatching(/"\.\."/) },
    ]);
  });

  it('holds an addition to the limits: files too large are skipped, too many files or characters refused', async () => {
    const read = await readWorkspaceFiles([file('big.txt', 'x'.repeat(CONTENT_LIMITS.fileChars + 1)), file('ok.txt', 'fine')]);
    expect(read.files.map((f) => f.path)).toEqual(['ok.txt']);
    expect(read.skipped).toEqual([{ path: 'big.txt', reason: expect.stringMatching(/characters, more than a workspace file may hold/) }]);
    const many = Array.from({ length: CONTENT_LIMITS.workspaceFiles + 1 }, (_, i) => file(`f${i}.txt`, 'x'));
    expect(await codeOf(() => readWorkspaceFiles(many))).toBe('content/too-many-files');
    const heavy = Array.from({ length: 17 }, (_, i) => file(`h${i}.txt`, 'y'.repeat(CONTENT_LIMITS.fileChars)));
    expect(await codeOf(() => readWorkspaceFiles(heavy))).toBe('content/too-large');
  });
});

describe('content as host steps', () => {
  it('cuts calls into steps within the loop\'s limits, and each file or source is one call of its tool', () => {
    const files = Array.from({ length: 1200 }, (_, i) => ({ path: `f${i}.txt`, content: 'x' }));
    const steps = workspaceWrites(files);
    expect(steps.map((s) => s.length)).toEqual([HOST_STEP_LIMITS.calls, HOST_STEP_LIMITS.calls, 200]);
    expect(JSON.parse(steps[0]![0]!.args)).toEqual({ op: 'write', path: 'f0.txt', content: 'x' });
    const big = Array.from({ length: 5 }, (_, i) => ({ path: `b${i}`, content: 'z'.repeat(CONTENT_LIMITS.fileChars) }));
    for (const step of workspaceWrites(big)) expect(step.reduce((n, c) => n + c.args.length, 0)).toBeLessThanOrEqual(HOST_STEP_LIMITS.argsChars);
    expect(inSteps([])).toEqual([]);
    const [docs] = docsAdds([{ ...pastedSource('', 'Tides\nrise and fall'), url: 'https://example.org/t' }]);
    expect(docs!.map((c) => [c.tool, JSON.parse(c.args)])).toEqual([['docs', { op: 'add', title: 'Tides', text: 'Tides\nrise and fall', source: 'https://example.org/t' }]]);
  });

  it('reads back what host calls added and what their tool refused', () => {
    const at = 1;
    const events: SessionEvent[] = [
      { type: 'tool-call', callId: 'host-3-1', tool: 'workspace', args: JSON.stringify({ op: 'write', path: 'a.ts', content: '' }), at },
      { type: 'tool-result', callId: 'host-3-1', ok: true, output: '{}', at },
      { type: 'tool-call', callId: 'host-3-2', tool: 'workspace', args: JSON.stringify({ op: 'write', path: 'b.ts', content: '' }), at },
      { type: 'tool-result', callId: 'host-3-2', ok: false, output: 'The workspace already holds 2000 files', at },
      { type: 'tool-call', callId: 'c1', tool: 'workspace', args: JSON.stringify({ op: 'list' }), at },
      { type: 'tool-result', callId: 'c1', ok: true, output: '{}', at },
    ];
    expect(hostOutcome(events)).toEqual({ added: ['a.ts'], refused: [{ what: 'b.ts', reason: 'The workspace already holds 2000 files' }] });
  });

  it('pasted text needs text; a source over the limit is cut with a note saying how much', async () => {
    expect(await codeOf(() => pastedSource('Title', '   '))).toBe('content/empty-source');
    const long = pastedSource('Long', 'w'.repeat(CONTENT_LIMITS.sourceChars + 10));
    expect(long.clipped).toBe(10);
    expect(long.text.endsWith('[10 more characters were not added.]')).toBe(true);
  });
});
