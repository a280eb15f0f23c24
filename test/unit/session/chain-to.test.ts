/**
 * The chain from the root to any checkpoint (what a panel shows a session as at): read from the store, on the current
 * branch or another, reusing a chain already read where the walk meets it.
 */
import { describe, expect, test } from 'vitest';
import { Session, chainTo, type ChainStep } from '../../../src/core/session/index.ts';
import { createMemoryStore, type ObjectId } from '../../../src/core/store/index.ts';
import { chatStep, testLlm } from '../../support/session-fixtures.ts';

async function forked(): Promise<{ s: Session; main: ObjectId[]; alt: ObjectId[] }> {
  const s = await Session.create(createMemoryStore(), { llm: testLlm });
  const main = [await s.head()];
  for (let n = 1; n <= 3; n++) main.push(await s.append(chatStep(n)));
  await s.fork(main[1]!, 'alt');
  await s.switchBranch('alt');
  const alt = [await s.append(chatStep(10)), await s.append(chatStep(11))];
  await s.switchBranch('main');
  return { s, main, alt };
}

const ids = (chain: readonly ChainStep[]): ObjectId[] => chain.map((c) => c.id);

describe('chainTo', () => {
  test('a checkpoint of the current branch: the root up to it, with step counts and events', async () => {
    const { s, main } = await forked();
    const chain = await chainTo(s, main[2]!);
    expect(ids(chain)).toEqual(main.slice(0, 3));
    expect(chain.map((c) => c.n)).toEqual([0, 1, 2]);
    expect(chain[2]!.events.find((e) => e.type === 'user')).toMatchObject({ text: 'question number 2' });
    expect(chain.map((c) => c.id)).toEqual((await s.history(main[2]!)).map((h) => h.id).reverse());
  });

  test('a checkpoint of another branch: its own history, through the fork point', async () => {
    const { s, main, alt } = await forked();
    const chain = await chainTo(s, alt[1]!);
    expect(ids(chain)).toEqual((await s.history('alt')).map((h) => h.id).reverse());
    expect(ids(chain).slice(0, 2)).toEqual(main.slice(0, 2));
    expect(ids(chain).at(-1)).toBe(alt[1]);
    expect(ids(chain)).not.toContain(main[2]);
  });

  test('a known chain is reused from where the walk meets it, and only that far', async () => {
    const { s, main, alt } = await forked();
    const known = await chainTo(s, main[3]!);
    // A marked copy of the known prefix shows which entries came from it rather than from the store.
    const marked = known.map((c) => ({ ...c, events: [] }));
    const chain = await chainTo(s, alt[0]!, marked);
    expect(ids(chain).slice(0, 2)).toEqual(main.slice(0, 2));
    expect(chain.slice(0, 2).every((c) => c.events.length === 0)).toBe(true);
    expect(chain.slice(2).every((c) => c.events.length > 0)).toBe(true);
    // A checkpoint in the known chain itself: its prefix, nothing read.
    expect(await chainTo(s, main[1]!, marked)).toEqual(marked.slice(0, 2));
  });

  test('a checkpoint the store does not hold is a typed error', async () => {
    const { s } = await forked();
    await expect(chainTo(s, 'f'.repeat(64) as ObjectId)).rejects.toMatchObject({ code: 'store/missing-object' });
  });
});
