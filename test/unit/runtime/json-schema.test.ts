/** The tool-argument check: what matches passes; what does not is named, by path, in words a model can act on. */
import { describe, expect, it } from 'vitest';
import { checkJsonSchema } from '../../../src/core/runtime/json-schema.ts';

const schema = {
  type: 'object',
  properties: {
    op: { enum: ['add', 'list'] },
    title: { type: 'string', minLength: 1, maxLength: 10 },
    id: { type: 'integer', minimum: 1 },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 2 },
  },
  required: ['op'],
  additionalProperties: false,
};

describe('checkJsonSchema', () => {
  it('accepts matching arguments', () => {
    expect(checkJsonSchema(schema, { op: 'add', title: 'x', id: 3, tags: ['a'] })).toEqual([]);
    expect(checkJsonSchema({}, 'anything')).toEqual([]);
  });

  it('names every problem by its path', () => {
    expect(checkJsonSchema(schema, { title: '', id: 1.5, tags: ['a', 2, 'c'], extra: true })).toEqual([
      'arguments.op: is required',
      'arguments.title: must be at least 1 characters',
      'arguments.id: must be an integer, got a number',
      'arguments.tags: allows at most 2 items',
      'arguments.tags[1]: must be a string, got an integer',
      'arguments.extra: is not an allowed property (allowed: op, title, id, tags)',
    ]);
    expect(checkJsonSchema(schema, [])).toEqual(['arguments: must be an object, got an array']);
    expect(checkJsonSchema(schema, { op: 'zap' })).toEqual(['arguments.op: must be one of "add", "list"']);
  });

  it('oneOf / anyOf: none matching gives the closest alternative; several matching a oneOf is refused', () => {
    const forms = { oneOf: [{ properties: { op: { const: 'get' }, id: { type: 'integer' } }, required: ['op', 'id'] }, { properties: { op: { const: 'list' } }, required: ['op'] }] };
    expect(checkJsonSchema(forms, { op: 'get', id: 2 })).toEqual([]);
    expect(checkJsonSchema(forms, { op: 'get' })).toEqual(['arguments: matches none of the allowed forms; closest: arguments.id: is required']);
    expect(checkJsonSchema({ oneOf: [{ type: 'integer' }, { type: 'number' }] }, 3)).toEqual(['arguments: matches more than one of the allowed forms']);
  });

  it('refuses values nested past the depth limit instead of recursing without end', () => {
    let value: unknown = 'x';
    for (let i = 0; i < 40; i++) value = [value];
    let nested: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 40; i++) nested = { type: 'array', items: nested };
    expect(checkJsonSchema(nested, value).some((p) => p.includes('nested too deeply'))).toBe(true);
  });
});
