import { describe, expect, it } from 'vitest';
import { PREFIX_BLOCK, PrefixIndex } from '../../../server/llm/prefix-index.ts';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('prefix index', () => {
  it('finds the holders of the longest whole-block prefix, forgets replaced content, honours the filter', () => {
    const index = new PrefixIndex<string>();
    index.set('a', ids(3 * PREFIX_BLOCK + 10));
    index.set('b', [...ids(PREFIX_BLOCK), ...ids(2 * PREFIX_BLOCK, 5000)]);
    const prompt = [...ids(2 * PREFIX_BLOCK + 20), 9999];
    expect(index.longest(prompt, () => true)).toEqual({ holders: ['a'], tokens: 2 * PREFIX_BLOCK });
    expect(index.longest(prompt, (h) => h !== 'a')).toEqual({ holders: ['b'], tokens: PREFIX_BLOCK });
    expect(index.longest(ids(PREFIX_BLOCK - 1), () => true)).toBeUndefined(); // no whole block
    expect(index.longest(ids(PREFIX_BLOCK, 1), () => true)).toBeUndefined(); // differs in the first block
    index.set('a', ids(PREFIX_BLOCK, 7000));
    expect(index.longest(prompt, () => true)).toEqual({ holders: ['b'], tokens: PREFIX_BLOCK });
    index.delete('b');
    expect(index.longest(prompt, () => true)).toBeUndefined();
  });
});
