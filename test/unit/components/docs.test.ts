/** The `docs` tool, built and called as a component: add, ranked search, passages, remove, limits, bad arguments. */
import { beforeAll, describe, expect, it } from 'vitest';
import { BUILD_TIMEOUT, directTool, errorOf } from './built.ts';

let docs: Awaited<ReturnType<typeof directTool>>;

const FERRIES = [
  'Ferries carry passengers and vehicles across rivers, lakes and straits.',
  'The Staten Island Ferry runs every thirty minutes and carries about 70,000 passengers a day between Manhattan and Staten Island.',
  'Electric ferries charge their batteries at the dock while passengers board; Norway runs more than seventy of them.',
].join('\n\n');
const BRIDGES = 'Suspension bridges hang their deck from cables slung between towers. The Golden Gate Bridge opened in 1937.';

beforeAll(async () => {
  docs = await directTool('docs');
}, BUILD_TIMEOUT);

describe('docs tool', () => {
  it('adds documents and lists them', () => {
    expect(docs.call({ op: 'add', title: 'Ferries', text: FERRIES, source: 'https://example.org/ferries' })).toEqual({ doc: 1, title: 'Ferries', passages: 1, characters: FERRIES.length });
    expect(docs.call({ op: 'add', title: 'Bridges', text: BRIDGES })).toMatchObject({ doc: 2, passages: 1 });
    expect(docs.call({ op: 'list' })).toEqual({
      documents: [
        { doc: 1, title: 'Ferries', source: 'https://example.org/ferries', passages: 1, characters: FERRIES.length },
        { doc: 2, title: 'Bridges', source: null, passages: 1, characters: BRIDGES.length },
      ],
    });
  });

  it('ranks passages by BM25, with light stemming', () => {
    const { results } = docs.call({ op: 'search', query: 'how many passengers ride the ferry' }) as { results: { doc: number; score: number }[] };
    expect(results.map((r) => r.doc)).toEqual([1]);
    const cables = docs.call({ op: 'search', query: 'cable suspension bridge', k: 1 }) as { results: { doc: number; passage: number; text: string }[] };
    expect(cables.results).toEqual([expect.objectContaining({ doc: 2, passage: 1, title: 'Bridges' })]);
    expect(docs.call({ op: 'search', query: 'zeppelin' })).toEqual({ results: [] });
  });

  it('splits long documents into passages, ranks the right one first, and fetches it', () => {
    const filler = (topic: string, n: number) => Array.from({ length: n }, (_, i) => `Paragraph ${i} about ${topic} and general matters of transport history.`).join(' ');
    const text = `${filler('roads', 30)}\n\n${filler('canals', 30)}\n\nThe tidal lock at the harbour mouth keeps the canal level steady.\n\n${filler('rails', 30)}`;
    const added = docs.call({ op: 'add', title: 'Transport', text }) as { doc: number; passages: number };
    expect(added.passages).toBeGreaterThan(3);
    const { results } = docs.call({ op: 'search', query: 'tidal lock harbour', doc: added.doc }) as { results: { passage: number; text: string }[] };
    expect(results[0]!.text).toContain('tidal lock');
    const passage = docs.call({ op: 'get', doc: added.doc, passage: results[0]!.passage }) as { text: string; of: number };
    expect(passage.text).toContain('The tidal lock at the harbour mouth');
    expect(passage.of).toBe(added.passages);
  });

  it('removes a document from the index', () => {
    expect(docs.call({ op: 'remove', doc: 2 })).toEqual({ removed: 2 });
    expect(docs.call({ op: 'search', query: 'suspension cables' })).toEqual({ results: [] });
    expect(errorOf(() => docs.call({ op: 'get', doc: 2 }))).toMatch(/No document 2/);
  });

  it('answers bad arguments with messages for the model', () => {
    expect(errorOf(() => docs.raw('{'))).toBe('The arguments are not valid JSON.');
    expect(errorOf(() => docs.call({ op: 'find' }))).toMatch(/Unknown op "find"/);
    expect(errorOf(() => docs.call({ op: 'add', title: 'x' }))).toBe('"text" must be a string.');
    expect(errorOf(() => docs.call({ op: 'add', title: 'x', text: '... !!!' }))).toMatch(/no words to search for/);
    expect(errorOf(() => docs.call({ op: 'search', query: 'the of and' }))).toMatch(/no searchable words/);
    expect(errorOf(() => docs.call({ op: 'search', query: 'ferry', k: 50 }))).toMatch(/"k" must be between 1 and 20/);
    expect(errorOf(() => docs.call({ op: 'get', doc: 1, passage: 9 }))).toMatch(/has 1 passages/);
    expect(errorOf(() => docs.call({ op: 'get', doc: 'one' }))).toMatch(/"doc" must be an integer/);
    expect(errorOf(() => docs.call({ op: 'add', title: 't', text: 'x'.repeat(1_000_001) }))).toMatch(/at most 1000000/);
  });
});
