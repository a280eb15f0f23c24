/** The `workspace` tool, built and called as a component: every op, the diff repairs, limits and bad arguments. */
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_TIMEOUT, directTool, errorOf } from './built.ts';

let ws: Awaited<ReturnType<typeof directTool>>;
const MATH = 'export function add(a, b) {\n  return a - b;\n}\n';
const STRINGS = 'export const hello = "hello";\n';
const README = '# Demo\n\nAdds numbers.\n';

beforeAll(async () => {
  ws = await directTool('workspace');
  ws.call({ op: 'write', path: 'src/math.ts', content: MATH });
  ws.call({ op: 'write', path: './src//util/strings.ts', content: STRINGS });
  ws.call({ op: 'write', path: 'README.md', content: README });
}, BUILD_TIMEOUT);

describe('workspace tool', () => {
  it('lists files recursively and one level at a time', () => {
    expect(ws.call({ op: 'list' })).toEqual({
      path: '/', total: 3,
      entries: [{ path: 'README.md', size: README.length }, { path: 'src/math.ts', size: MATH.length }, { path: 'src/util/strings.ts', size: STRINGS.length }],
    });
    expect(ws.call({ op: 'list', path: 'src', recursive: false })).toEqual({
      path: 'src/', total: 2, entries: [{ path: 'src/math.ts', size: MATH.length }, { path: 'src/util/', files: 1 }],
    });
  });

  it('reads whole files and line ranges, and says where the rest is', () => {
    expect(ws.call({ op: 'read', path: 'src/math.ts' })).toEqual({ path: 'src/math.ts', lines: 3, from: 1, to: 3, content: 'export function add(a, b) {\n  return a - b;\n}' });
    expect(ws.call({ op: 'read', path: 'src/math.ts', offset: 2, limit: 1 })).toEqual({ path: 'src/math.ts', lines: 3, from: 2, to: 2, content: '  return a - b;', next_offset: 3 });
  });

  it('writes, appends, moves and deletes', () => {
    expect(ws.call({ op: 'write', path: 'notes/log.txt', content: 'a\n' })).toMatchObject({ created: true, lines: 1 });
    expect(ws.call({ op: 'write', path: 'notes/log.txt', content: 'b\n', append: true })).toMatchObject({ created: false, lines: 2 });
    expect(ws.call({ op: 'move', from: 'notes/log.txt', to: 'notes/old.txt' })).toEqual({ moved: 'notes/log.txt', to: 'notes/old.txt' });
    expect(ws.call({ op: 'read', path: 'notes/old.txt' })).toMatchObject({ content: 'a\nb' });
    expect(ws.call({ op: 'delete', path: 'notes/old.txt' })).toEqual({ deleted: 'notes/old.txt' });
    expect(errorOf(() => ws.call({ op: 'read', path: 'notes/old.txt' }))).toMatch(/No file "notes\/old.txt"/);
  });

  it('greps literally by default, by regular expression on request', () => {
    expect(ws.call({ op: 'grep', pattern: 'a - b' })).toEqual({ matches: [{ path: 'src/math.ts', line: 2, text: '  return a - b;' }] });
    expect(ws.call({ op: 'grep', pattern: '^export (function|const)', regex: true, path: 'src' })).toEqual({
      matches: [{ path: 'src/math.ts', line: 1, text: 'export function add(a, b) {' }, { path: 'src/util/strings.ts', line: 1, text: 'export const hello = "hello";' }],
    });
    expect(ws.call({ op: 'grep', pattern: 'ADDS', ignore_case: true })).toMatchObject({ matches: [{ path: 'README.md', line: 3 }] });
    expect(errorOf(() => ws.call({ op: 'grep', pattern: '(', regex: true }))).toMatch(/not a valid regular expression/);
  });

  it('computes a diff that patch then applies', () => {
    const proposed = 'export function add(a, b) {\n  return a + b;\n}\n';
    const { diff } = ws.call({ op: 'diff', path: 'src/math.ts', content: proposed }) as { diff: string };
    expect(diff).toContain('-  return a - b;\n+  return a + b;');
    expect(ws.call({ op: 'patch', diff, dry_run: true })).toEqual({ applied: false, applies: true, files: [{ path: 'src/math.ts', status: 'modified', added: 1, removed: 1 }] });
    expect(ws.call({ op: 'read', path: 'src/math.ts' })).toMatchObject({ content: 'export function add(a, b) {\n  return a - b;\n}' });
    expect(ws.call({ op: 'patch', diff })).toMatchObject({ applied: true });
    expect(ws.call({ op: 'read', path: 'src/math.ts' })).toMatchObject({ content: 'export function add(a, b) {\n  return a + b;\n}' });
  });

  it('repairs what models get wrong: fences, stale counts, blank context lines', () => {
    ws.call({ op: 'write', path: 'gap.txt', content: 'one\n\nthree\nfour\n' });
    // Wrong counts in the header, the blank context line without its leading space, wrapped in a fence.
    const diff = '```diff\n--- a/gap.txt\n+++ b/gap.txt\n@@ -1,9 +1,9 @@\n one\n\n-three\n+THREE\n four\n```\n';
    expect(ws.call({ op: 'patch', diff })).toMatchObject({ applied: true, files: [{ path: 'gap.txt', added: 1, removed: 1 }] });
    expect(ws.call({ op: 'read', path: 'gap.txt' })).toMatchObject({ content: 'one\n\nTHREE\nfour' });
  });

  it('creates and deletes files through a multi-file diff, all or nothing', () => {
    const create = '--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+# New\n+text\n';
    const bad = '--- a/README.md\n+++ b/README.md\n@@ -1,1 +1,1 @@\n-# Not the title\n+# Title\n';
    const err = errorOf(() => ws.call({ op: 'patch', diff: create + bad }));
    expect(err).toMatch(/Hunk 1 of the diff for "README.md".*does not match/s);
    expect(err).toContain('# Demo');
    // The first file of the failed patch was not created.
    expect(errorOf(() => ws.call({ op: 'read', path: 'docs/new.md' }))).toMatch(/No file/);
    expect(ws.call({ op: 'patch', diff: create })).toMatchObject({ files: [{ path: 'docs/new.md', status: 'created' }] });
    const remove = '--- a/docs/new.md\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-# New\n-text\n';
    expect(ws.call({ op: 'patch', diff: remove })).toMatchObject({ files: [{ path: 'docs/new.md', status: 'deleted' }] });
    expect(errorOf(() => ws.call({ op: 'read', path: 'docs/new.md' }))).toMatch(/No file/);
  });

  it('answers bad arguments with messages for the model, and keeps working', () => {
    expect(errorOf(() => ws.raw('not json'))).toBe('The arguments are not valid JSON.');
    expect(errorOf(() => ws.call([1]))).toMatch(/must be a JSON object with an "op"/);
    expect(errorOf(() => ws.call({ op: 'format' }))).toMatch(/Unknown op "format"; use "list", "read"/);
    expect(errorOf(() => ws.call({ op: 'read' }))).toBe('"path" must be a string.');
    expect(errorOf(() => ws.call({ op: 'read', path: '../../etc/passwd' }))).toMatch(/contains ".."/);
    expect(errorOf(() => ws.call({ op: 'read', path: 'src' }))).toMatch(/"src" is a folder/);
    expect(errorOf(() => ws.call({ op: 'read', path: 'README.md', offset: 99 }))).toMatch(/"offset" must be between 1 and 3/);
    expect(errorOf(() => ws.call({ op: 'write', path: 'src/math.ts/x', content: '' }))).toMatch(/cannot be both a file and a folder/);
    expect(errorOf(() => ws.call({ op: 'write', path: 'big.txt', content: 'x'.repeat(512 * 1024 + 1) }))).toMatch(/at most 524288/);
    expect(errorOf(() => ws.call({ op: 'patch', diff: 'just prose' }))).toMatch(/contains no hunks/);
    expect(errorOf(() => ws.call({ op: 'patch', diff: '@@ -1 +1 @@\n-x\n+y\n' }))).toMatch(/names no file/);
    expect(errorOf(() => ws.call({ op: 'move', from: 'README.md', to: 'src/math.ts' }))).toMatch(/already exists/);
    expect(ws.call({ op: 'read', path: 'README.md' })).toMatchObject({ lines: 3 });
  });
});
