/** What the `docs` tool tells a model about itself; agents bundle it as their default tool list. */
export const docsSpec = {
  name: 'docs',
  description:
    'A document store with ranked (BM25) search over passages. ops: "add" {title, text, source?} stores a document ' +
    'and returns its id; "search" {query, k?, doc?} returns the best passages (doc id, passage number, score, text); ' +
    '"get" {doc, passage?} returns one passage, or the document\'s text; "list" lists the documents; "remove" {doc}.',
  parameters: {
    type: 'object',
    properties: {
      op: { enum: ['add', 'search', 'get', 'list', 'remove'] },
      title: { type: 'string' },
      text: { type: 'string' },
      source: { type: 'string', description: 'Where the document comes from: a URL, a citation.' },
      query: { type: 'string' },
      k: { type: 'integer', minimum: 1, maximum: 20 },
      doc: { type: 'integer' },
      passage: { type: 'integer', minimum: 1 },
    },
    required: ['op'],
  },
};
