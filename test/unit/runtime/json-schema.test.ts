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
    expect(checkJsonSchema(true, 1)).toEqual([]);
  });

  it('names every problem by its path, without the summaries of its parents', () => {
    expect(checkJsonSchema(schema, { title: '', id: 1.5, tags: ['a', 2, 'c'], extra: true })).toEqual([
      'arguments: Instance does not have required property "op".',
      'arguments.title: String is too short (0 < 1).',
      'arguments.id: Instance type "number" is invalid. Expected "integer".',
      'arguments.tags: Array has too many items (3 > 2).',
      'arguments.tags[1]: Instance type "number" is invalid. Expected "string".',
      'arguments: Property "extra" does not match additional properties schema.',
    ]);
    expect(checkJsonSchema(schema, [])).toEqual(['arguments: Instance type "array" is invalid. Expected "object".']);
    expect(checkJsonSchema(schema, { op: 'zap' })[0]).toMatch(/^arguments\.op: Instance does not match any of \["add","list"\]/);
  });

  it('oneOf: none matching names what each form missed; several matching is refused', () => {
    const forms = { oneOf: [{ properties: { op: { const: 'get' }, id: { type: 'integer' } }, required: ['op', 'id'] }, { properties: { op: { const: 'list' } }, required: ['op'] }] };
    expect(checkJsonSchema(forms, { op: 'get', id: 2 })).toEqual([]);
    expect(checkJsonSchema(forms, { op: 'get' })).toEqual([
      'arguments: Instance does not match exactly one subschema (0 matches).',
      'arguments: Instance does not have required property "id".',
      'arguments.op: Instance does not match "list".',
    ]);
    expect(checkJsonSchema({ oneOf: [{ type: 'integer' }, { type: 'number' }] }, 3)).toEqual(['arguments: Instance does not match exactly one subschema (2 matches).']);
  });

  it('the keywords the old subset ignored are checked too: pattern, format, $ref, exclusive bounds, uniqueItems', () => {
    const full = {
      $defs: { name: { type: 'string', pattern: '^[a-z]+$' } },
      type: 'object',
      properties: { name: { $ref: '#/$defs/name' }, n: { type: 'number', exclusiveMaximum: 3 }, list: { type: 'array', uniqueItems: true } },
    };
    expect(checkJsonSchema(full, { name: 'abc', n: 2.5, list: [1, 2] })).toEqual([]);
    const problems = checkJsonSchema(full, { name: 'A1', n: 3, list: [1, 1] });
    expect(problems.some((p) => p.startsWith('arguments.name: ') && p.includes('pattern'))).toBe(true);
    expect(problems.some((p) => p.startsWith('arguments.n: '))).toBe(true);
    expect(problems.some((p) => p.startsWith('arguments.list: '))).toBe(true);
  });

  it('refuses values nested past the depth limit instead of walking them', () => {
    let value: unknown = 'x';
    for (let i = 0; i < 40; i++) value = [value];
    expect(checkJsonSchema({}, value)).toEqual(['arguments: nested too deeply (more than 32 levels)']);
  });
});
