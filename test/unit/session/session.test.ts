import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../../src/core/errors.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { PAGE_SIZE, Session, chunkImage, decodeObject, encodeCanonical } from '../../../src/core/session/index.ts';
import { expectSameBytes } from '../../support/bytes.ts';
import { chatStep, generationEvent, patternImage, testLlm, userEvent } from '../../support/session-fixtures.ts';

const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isFerryError(e) ? e.code : String(e)));

describe('Session', () => {
  it('appends steps as checkpoints and reads history newest first', async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm });
    const a = await s.append(chatStep(1));
    const b = await s.append(chatStep(2));
    const history = await s.history();
    expect(history.map((h) => h.id).slice(0, 2)).toEqual([b, a]);
    expect(history).toHaveLength(3);
    expect(history[0]!.checkpoint.counters).toEqual({ steps: 2, tokens: 'answer number 1'.length * 2, costMicros: 0, timeMs: 0 });
    expect(history[0]!.checkpoint.events[0]).toMatchObject({ type: 'user', text: 'question number 2' });
    const reopened = await Session.open(store, s.id);
    expect(reopened.branch).toBe('main');
    expect(await reopened.head()).toBe(b);
  });

  it("gives the current branch's last finished replies' lengths, oldest first, leaving out replies cut short", async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm });
    expect(await s.recentReplyLengths(8)).toEqual([]);
    const first = await s.append({ events: [userEvent('q'), generationEvent('aaa')] });
    await s.append({ events: [userEvent('q'), generationEvent('cut off by a move', undefined, 'abort'), generationEvent('bbbbb'), generationEvent('cc')] });
    await s.append({ events: [userEvent('no reply yet')] });
    await s.append({ events: [generationEvent('dddd')] });
    expect(await s.recentReplyLengths(8)).toEqual([3, 5, 2, 4]);
    expect(await s.recentReplyLengths(2)).toEqual([2, 4]);
    expect(await s.recentReplyLengths(0)).toEqual([]);
    await s.fork(first, 'alt');
    await s.switchBranch('alt');
    await s.append({ events: [generationEvent('e')] });
    expect(await s.recentReplyLengths(8)).toEqual([3, 1]);
    // A long run of steps without a reply: it reads 32 checkpoints per reply asked for, not the whole history.
    for (let i = 0; i < 40; i++) await s.append({ events: [userEvent(`tool step ${i}`)] });
    expect(await s.recentReplyLengths(1)).toEqual([]);
    expect(await s.recentReplyLengths(2)).toEqual([3, 1]);
  });

  it('forks in O(1): a marker checkpoint sharing everything, without switching', async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm, components: { tool: patternImage(3 * PAGE_SIZE, 7) } });
    const a = await s.append(chatStep(1));
    await s.append(chatStep(2));
    const marker = await s.fork(a, 'alt');
    expect(s.branch).toBe('main');
    const cp = await s.checkpoint(marker);
    expect(cp.parent).toBe(a);
    expect(cp.events).toEqual([expect.objectContaining({ type: 'fork', from: a, fromBranch: 'main', branch: 'alt' })]);
    expect(cp.components).toEqual((await s.checkpoint(a)).components);
    expect(await codeOf(s.fork(a, 'alt'))).toBe('session/branch-exists');
    await s.switchBranch('alt');
    expect((await Session.open(store, s.id)).branch).toBe('alt');
    await s.append(chatStep(3));
    expect(await s.commonAncestor('main', 'alt')).toBe(a);
    expect((await s.branches()).map((b) => b.name)).toEqual(['alt', 'main']);
  });

  it('rolls back to an ancestor only, keeping the old head in the reflog', async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm });
    const a = await s.append(chatStep(1));
    const b = await s.append(chatStep(2));
    await s.rollback(a);
    expect(await s.head()).toBe(a);
    expect((await s.reflog()).map((e) => e.to)).toContain(b);
    expect(await codeOf(s.rollback(b))).toBe('session/not-ancestor');
    const c = await s.append(chatStep(3));
    expect((await s.checkpoint(c)).parent).toBe(a);
  });

  it('stores only changed pages of component images and elides zero pages', async () => {
    const store = createMemoryStore();
    const image = new Uint8Array(8 * PAGE_SIZE);
    image.set(patternImage(2 * PAGE_SIZE, 3), 0);
    const s = await Session.create(store, { llm: testLlm, components: { vm: image } });
    const root = await s.head();
    const rootList = decodeObject('chunks', (await store.get((await s.checkpoint(root)).components.vm!))!);
    expect(rootList.pages.filter((p) => p === null)).toHaveLength(6);
    const changed = image.slice();
    changed[5 * PAGE_SIZE + 10] = 1;
    const next = await s.append(chatStep(1, { vm: changed }));
    const list = decodeObject('chunks', (await store.get((await s.checkpoint(next)).components.vm!))!);
    expect(list.pages.filter((p, i) => p !== rootList.pages[i])).toHaveLength(1);
    expectSameBytes(await s.component(next, 'vm'), changed);
    expectSameBytes(await s.component(root, 'vm'), image);
    const fresh = await chunkImage(changed);
    expect(fresh.listId).toBe((await s.checkpoint(next)).components.vm);
  });

  it('sees changes made in place to an image it was given before', async () => {
    const store = createMemoryStore();
    const image = patternImage(3 * PAGE_SIZE, 11);
    const s = await Session.create(store, { llm: testLlm, components: { vm: image } });
    image[2 * PAGE_SIZE + 1]! ^= 0xff;
    const a = await s.append(chatStep(1, { vm: image }));
    image[1]! ^= 0xff;
    const b = await s.append(chatStep(2, { vm: image }));
    expectSameBytes(await s.component(b, 'vm'), image);
    image[1]! ^= 0xff;
    expectSameBytes(await s.component(a, 'vm'), image);
  });

  it('applies page deltas exactly as if the whole image had been given', async () => {
    const store = createMemoryStore();
    const image = patternImage(3 * PAGE_SIZE + 100, 4);
    const s = await Session.create(store, { llm: testLlm, components: { 'agent/0:memory': image } });
    const next = image.slice();
    next.set(patternImage(50, 5), PAGE_SIZE + 3);
    next.fill(0, 2 * PAGE_SIZE, 3 * PAGE_SIZE);
    const a = await s.append(chatStep(1, { 'agent/0:memory': { size: next.length, pages: new Map([[1, next.slice(PAGE_SIZE, 2 * PAGE_SIZE)], [2, null]]) } }));
    expect((await s.checkpoint(a)).components['agent/0:memory']).toBe((await chunkImage(next)).listId);
    expectSameBytes(await s.component(a, 'agent/0:memory'), next);

    const grown = new Uint8Array(4 * PAGE_SIZE + 10);
    grown.set(next);
    grown[4 * PAGE_SIZE + 1] = 9;
    const tail = new Map<number, Uint8Array | null>([[4, grown.slice(4 * PAGE_SIZE)]]);
    expect(await codeOf(s.append(chatStep(2, { 'agent/0:memory': { size: grown.length, pages: tail } })))).toBe('session/bad-delta');
    tail.set(3, grown.slice(3 * PAGE_SIZE, 4 * PAGE_SIZE));
    const b = await s.append(chatStep(2, { 'agent/0:memory': { size: grown.length, pages: tail } }));
    expect((await s.checkpoint(b)).components['agent/0:memory']).toBe((await chunkImage(grown)).listId);
    expect(await codeOf(s.append(chatStep(3, { 'agent/0:memory': { size: grown.length, pages: new Map([[9, null]]) } })))).toBe('session/bad-delta');
    expect(await codeOf(s.append(chatStep(3, { 'agent/0:memory': { size: grown.length, pages: new Map([[0, new Uint8Array(5).fill(1)]]) } })))).toBe('session/bad-delta');
  });

  it('refuses bad names, unknown sessions and non-canonical objects with typed errors', async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm });
    expect(await codeOf(s.fork(await s.head(), '../x'))).toBe('session/bad-branch-name');
    expect(await codeOf(s.switchBranch('nope'))).toBe('session/no-branch');
    expect(await codeOf(Session.open(store, '0'.repeat(32)))).toBe('session/not-found');
    expect(await codeOf(Session.create(store, { id: s.id, llm: testLlm }))).toBe('session/exists');
    const cp = await s.checkpoint(await s.head());
    expect(() => decodeObject('checkpoint', encodeCanonical({ ...cp, extra: 1 }))).toThrow(expect.objectContaining({ code: 'snapshot/bad-object' }));
    expect(() => decodeObject('checkpoint', encodeCanonical({ ...cp, parent: 'x' }))).toThrow(expect.objectContaining({ code: 'snapshot/bad-object' }));
  });

  it('makes concurrent writers conflict instead of losing a step', async () => {
    const store = createMemoryStore();
    const s = await Session.create(store, { llm: testLlm });
    const other = await Session.open(store, s.id);
    const results = await Promise.allSettled([s.append(chatStep(1)), other.append(chatStep(2))]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((await s.history()).length).toBe(2);
  });
});
