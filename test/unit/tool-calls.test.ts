import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { parseToolCalls, describeToolCallErrors, toolInstructions, MAX_CALLS_PER_REPLY } from '../../src/core/llm/tool-calls.ts';

describe('tool-call extraction from tagged JSON', () => {
  test('prose and well-formed calls are separated, in order', () => {
    const reply = 'Let me look.\n<tool_call>{"name": "workspace.read", "arguments": {"path": "a.ts"}}</tool_call>\nand\n<tool_call>\n{"name":"notes.add","arguments":{"text":"x"}}\n</tool_call>';
    const parsed = parseToolCalls(reply);
    expect(parsed.errors).toEqual([]);
    expect(parsed.calls).toEqual([
      { name: 'workspace.read', arguments: { path: 'a.ts' } },
      { name: 'notes.add', arguments: { text: 'x' } },
    ]);
    expect(parsed.text).toBe('Let me look.\n\nand');
  });

  test('a reply without calls is all text', () => {
    expect(parseToolCalls('  Just an answer. ')).toEqual({ text: 'Just an answer.', calls: [], errors: [] });
  });

  test('arguments as a JSON string and missing arguments are accepted', () => {
    const parsed = parseToolCalls('<tool_call>{"name":"a","arguments":"{\\"k\\":1}"}</tool_call><tool_call>{"name":"b"}</tool_call>');
    expect(parsed.calls).toEqual([{ name: 'a', arguments: { k: 1 } }, { name: 'b', arguments: {} }]);
  });

  test.each([
    ['<tool_call>{"name": "a", </tool_call>', /not valid JSON/],
    ['<tool_call>[1,2]</tool_call>', /not a JSON object/],
    ['<tool_call>{"arguments": {}}</tool_call>', /missing "name"/],
    ['<tool_call>{"name": ""}</tool_call>', /missing "name"/],
    ['<tool_call>{"name": "a", "arguments": [1]}</tool_call>', /must be a JSON object/],
    ['<tool_call>{"name": "a", "arguments": "nope"}</tool_call>', /string that is not JSON/],
    ['text <tool_call>{"name": "a", "arguments": {}', /unterminated/],
  ])('malformed %s becomes an error observation', (reply, problem) => {
    const parsed = parseToolCalls(reply);
    expect(parsed.calls).toEqual([]);
    expect(parsed.errors).toHaveLength(1);
    expect(parsed.errors[0]!.problem).toMatch(problem);
    expect(describeToolCallErrors(parsed.errors)).toMatch(/tool call #1/);
  });

  test('calls to tools not granted are refused by name', () => {
    const parsed = parseToolCalls('<tool_call>{"name":"shell.exec","arguments":{}}</tool_call>', new Set(['notes.add']));
    expect(parsed.errors[0]!.problem).toBe('unknown tool "shell.exec"; available: notes.add');
  });

  test('a runaway reply is cut off after the maximum number of calls', () => {
    const reply = '<tool_call>{"name":"a"}</tool_call>'.repeat(MAX_CALLS_PER_REPLY + 5);
    const parsed = parseToolCalls(reply);
    expect(parsed.calls).toHaveLength(MAX_CALLS_PER_REPLY);
    expect(parsed.errors.at(-1)!.problem).toMatch(/more than/);
  });

  test('never throws, and every call it returns round-trips through its own format', () => {
    fc.assert(
      fc.property(fc.string(), fc.array(fc.record({ name: fc.string({ minLength: 1 }), arguments: fc.dictionary(fc.string(), fc.jsonValue()) }), { maxLength: 4 }), (noise, calls) => {
        expect(() => parseToolCalls(noise)).not.toThrow();
        // Prose and JSON that themselves contain a tag are not well-formed calls; keep them out of this property.
        let clean = noise;
        while (clean.includes('tool_call>')) clean = clean.replaceAll('tool_call>', '');
        fc.pre(!calls.some((c) => JSON.stringify(c).includes('tool_call>')));
        const reply = clean + calls.map((c) => `<tool_call>${JSON.stringify(c)}</tool_call>`).join('');
        const parsed = parseToolCalls(reply);
        expect(parsed.errors).toEqual([]);
        expect(parsed.calls).toEqual(calls.map((c) => JSON.parse(JSON.stringify(c)) as unknown));
      }),
      { numRuns: 300 },
    );
  });

  test('instructions list every tool and the call format', () => {
    const text = toolInstructions([{ name: 'notes.add', description: 'Add a note', parameters: { type: 'object' } }]);
    expect(text).toContain('"name":"notes.add"');
    expect(text).toContain('<tool_call>');
  });
});
