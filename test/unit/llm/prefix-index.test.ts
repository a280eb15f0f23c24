import { describe, expect, it } from 'vitest';
import { PREFIX_BLOCK, PrefixIndex } from '../../../server/llm/prefix-index.ts';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);
const all = () => true;

describe('prefix index', () => {
  it('finds the holders of whole-block prefixes, block after block, forgets replaced content, honours the filter', () => {
    const index = new PrefixIndex<string>();
    index.set('a', ids(3 * PREFIX_BLOCK + 10));
    index.set('b', [...ids(PREFIX_BLOCK), ...ids(PREFIX_BLOCK, 5000)]);
    index.set('c', ids(2 * PREFIX_BLOCK, 1)); // differs in the first block
    expect(index.holders([...ids(2 * PREFIX_BLOCK + 20), 9999], all)).toEqual(new Set(['a', 'b']));
    expect(index.holders(ids(2 * PREFIX_BLOCK), (h) => h !== 'a')).toEqual(new Set(['b']));
    // b's second block after another first block: keys are chained, so nobody holds it.
    expect(index.holders([...ids(PREFIX_BLOCK, 9000), ...ids(PREFIX_BLOCK, 5000)], all).size).toBe(0);
    expect(index.holders(ids(PREFIX_BLOCK - 1), all).size).toBe(0); // no whole block
    index.set('a', ids(PREFIX_BLOCK, 7000));
    expect(index.holders(ids(2 * PREFIX_BLOCK), all)).toEqual(new Set(['b']));
    index.delete('b');
    expect(index.holders(ids(2 * PREFIX_BLOCK), all).size).toBe(0);
  });
});
