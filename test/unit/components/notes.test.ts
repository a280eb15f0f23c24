/** The `notes` tool, built and called as a component: the outline ops, update and Markdown render, bad arguments. */
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_TIMEOUT, directTool, errorOf } from './built.ts';

let notes: Awaited<ReturnType<typeof directTool>>;

beforeAll(async () => {
  notes = await directTool('notes');
}, BUILD_TIMEOUT);

describe('notes tool', () => {
  it('builds an outline, updates notes and renders it as Markdown', () => {
    expect(notes.call({ op: 'add', title: 'Intro' })).toEqual({ id: 1 });
    expect(notes.call({ op: 'add', title: 'Why ferries', body: 'They are cheap.', parent: 1 })).toEqual({ id: 2 });
    expect(notes.call({ op: 'add', title: 'Outro' })).toEqual({ id: 3 });
    expect(notes.call({ op: 'update', id: 2, append: ' And green.' })).toEqual({ id: 2, title: 'Why ferries', characters: 26 });
    expect(notes.call({ op: 'update', id: 3, title: 'Closing' })).toMatchObject({ title: 'Closing' });
    expect(notes.call({ op: 'list' })).toEqual([
      { id: 1, title: 'Intro', children: [{ id: 2, title: 'Why ferries', children: [] }] },
      { id: 3, title: 'Closing', children: [] },
    ]);
    expect(notes.call({ op: 'render' })).toEqual({ markdown: '# Intro\n\n## Why ferries\n\nThey are cheap. And green.\n\n# Closing\n' });
    expect(notes.call({ op: 'render', id: 2 })).toEqual({ markdown: '# Why ferries\n\nThey are cheap. And green.\n' });
    expect(notes.call({ op: 'delete', id: 1 })).toEqual({ deleted: 2 });
    expect(notes.call({ op: 'get', id: 3 })).toMatchObject({ title: 'Closing', children: [] });
  });

  it('answers bad arguments with messages for the model', () => {
    expect(errorOf(() => notes.raw('nope'))).toBe('The arguments are not valid JSON.');
    expect(errorOf(() => notes.call({ op: 'rename' }))).toMatch(/Unknown op "rename"/);
    expect(errorOf(() => notes.call({ op: 'add', title: '' }))).toMatch(/non-empty "title"/);
    expect(errorOf(() => notes.call({ op: 'get', id: 99 }))).toMatch(/No note with id 99/);
    expect(errorOf(() => notes.call({ op: 'update', id: 3 }))).toMatch(/needs "title", "body" or "append"/);
    expect(errorOf(() => notes.call({ op: 'update', id: 3, body: 7 }))).toBe('"body" must be a string.');
    expect(errorOf(() => notes.call({ op: 'add', title: 'x'.repeat(501) }))).toMatch(/at most 500/);
    let parent = (notes.call({ op: 'add', title: 'level 1' }) as { id: number }).id;
    for (let level = 2; level <= 32; level++) parent = (notes.call({ op: 'add', title: `level ${level}`, parent }) as { id: number }).id;
    expect(errorOf(() => notes.call({ op: 'add', title: 'level 33', parent }))).toMatch(/at most 32 levels deep/);
  });
});
