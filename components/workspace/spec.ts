/** What the `workspace` tool tells a model about itself; agents bundle it as their default tool list. */
export const workspaceSpec = {
  name: 'workspace',
  description:
    'A workspace of text files (paths like "src/app.ts"). ops: "list" {path?, recursive?} lists files and sizes; ' +
    '"read" {path, offset?, limit?} returns the text (offset = first line, 1-based; limit = number of lines); ' +
    '"write" {path, content, append?} creates or replaces a file; "delete" {path}; "move" {from, to}; ' +
    '"grep" {pattern, path?, regex?, ignore_case?, max_results?} finds matching lines; ' +
    '"diff" {path, content} returns the unified diff from the file to the given content (nothing is written); ' +
    '"patch" {diff, dry_run?} applies a unified diff (one or more files, all or nothing; dry_run only checks that it applies).',
  parameters: {
    type: 'object',
    properties: {
      op: { enum: ['list', 'read', 'write', 'delete', 'move', 'grep', 'diff', 'patch'] },
      path: { type: 'string' },
      recursive: { type: 'boolean' },
      offset: { type: 'integer', minimum: 1 },
      limit: { type: 'integer', minimum: 1 },
      content: { type: 'string' },
      append: { type: 'boolean' },
      from: { type: 'string' },
      to: { type: 'string' },
      pattern: { type: 'string' },
      regex: { type: 'boolean' },
      ignore_case: { type: 'boolean' },
      max_results: { type: 'integer', minimum: 1 },
      diff: { type: 'string' },
      dry_run: { type: 'boolean' },
    },
    required: ['op'],
  },
};
