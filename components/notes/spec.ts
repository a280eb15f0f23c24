/** What the `notes` tool tells a model about itself; agents bundle it as their default tool list. */
const parameters = {
  type: 'object',
  oneOf: [
    { properties: { op: { const: 'update' }, id: { type: 'integer' }, title: { type: 'string' }, body: { type: 'string' }, append: { type: 'string' } }, required: ['op', 'id'] },
    { properties: { op: { const: 'render' }, id: { type: 'integer' } }, required: ['op'] },
    { properties: { op: { const: 'add' }, title: { type: 'string' }, body: { type: 'string' }, parent: { type: 'integer' } }, required: ['op', 'title'] },
    { properties: { op: { const: 'list' }, parent: { type: 'integer' } }, required: ['op'] },
    { properties: { op: { const: 'get' }, id: { type: 'integer' } }, required: ['op', 'id'] },
    { properties: { op: { const: 'delete' }, id: { type: 'integer' } }, required: ['op', 'id'] },
  ],
};

export const notesSpec = {
  name: 'notes',
  description:
    'An outline of notes. op "add" {title, body?, parent?} returns {id}; "list" {parent?} returns the outline ' +
    '(titles and ids, nested); "get" {id} returns the note with its children; "update" {id, title?, body?, append?} ' +
    'changes a note (append adds text to its body); "render" {id?} returns the whole outline, or one subtree, as Markdown ' +
    'with the bodies; "delete" {id} removes a note and everything under it.',
  parameters,
};
