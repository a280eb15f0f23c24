/**
 * The GBNF matcher (llama.cpp's grammar semantics in the core): parse errors are typed and say where; literals,
 * classes, repetitions, alternations and nested rules accept exactly their prefixes; token pieces that end inside a
 * UTF-8 character are judged as llama.cpp does; the grammars Ferry writes for JSON schemas and tool calls accept
 * valid values and refuse invalid prefixes.
 */
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../../src/core/errors.ts';
import { GbnfGrammar, gbnfMatcher, type GbnfMatcher } from '../../../src/core/llm/gbnf.ts';
import { jsonSchemaGrammar } from '../../../src/core/llm/json-grammar.ts';
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN, type ToolSpec } from '../../../src/core/llm/tool-calls.ts';
import { toolCallGrammar } from '../../../src/core/llm/tool-grammar.ts';
import { checkJsonSchema } from '../../../src/core/runtime/json-schema.ts';
import { notesSpec } from '../../../components/notes/spec.ts';
import { workspaceSpec } from '../../../components/workspace/spec.ts';

/** Whether the whole of `text` is a sentence of the grammar. */
function matches(grammar: string, text: string): boolean {
  const m = gbnfMatcher(grammar);
  if (!m.allows(text)) return false;
  m.accept(text);
  return m.canEnd;
}

/** Whether `text` is a prefix of some sentence. */
function prefix(grammar: string, text: string): boolean {
  return gbnfMatcher(grammar).allows(text);
}

function parseError(grammar: string): FerryError {
  try {
    GbnfGrammar.parse(grammar);
  } catch (err) {
    if (err instanceof FerryError) return err;
    throw err;
  }
  throw new Error(`no error for ${JSON.stringify(grammar)}`);
}

describe('parsing', () => {
  it('refuses bad grammars with llm/bad-grammar, saying what and where', () => {
    const cases: [string, RegExp][] = [
      ['', /empty/],
      ['root ::= (', /expected '\)'/],
      ['root ::= "abc', /unterminated string/],
      ['root ::= [a-', /unterminated character class/],
      ['root ::= "a"\nroot2 := "b"', /expected ::= .*line 2, column 7/],
      ['root ::= other', /rule "other", which it does not define/],
      ['start ::= "a"', /no rule named "root"/],
      ['root ::= root "a" | "b"', /left-recursive at rule "root"/],
      ['root ::= x\nx ::= y? root\ny ::= "b"', /left-recursive at rule "(root|x)"/],
      ['root ::= "\\q"', /unknown escape .* at line 1, column 11/],
      ['root ::= "\\x4"', /2 hex digits/],
      ['root ::= *', /before \*\/\+\/\?\/\{/],
      ['root ::= "a"{3,2}', /maximum is below its minimum/],
      ['root ::= "a"{2001}', /over 2000/],
      ['root ::= ("a"{0,100}){0,100}', /too many repetitions/],
      ['root ::= "a" ) "b"', /newline or the end/],
      ['root ::= <[12]>', /token references/],
      ['root ::= "a"{x}', /number after '\{'/],
    ];
    for (const [grammar, message] of cases) {
      const err = parseError(grammar);
      expect(err.code, grammar).toBe('llm/bad-grammar');
      expect(err.message, grammar).toMatch(message);
    }
  });

  it('takes comments, blank lines, CRLF and multi-line groups', () => {
    const grammar = '# a comment\r\n\r\nroot ::= greeting ( \n " " name # inline\n )?\r\ngreeting ::= "hi" | "hello"\nname ::= [a-z]+\n';
    expect(matches(grammar, 'hi')).toBe(true);
    expect(matches(grammar, 'hello bob')).toBe(true);
    expect(matches(grammar, 'hello ')).toBe(false);
    expect(matches(grammar, 'hey')).toBe(false);
  });
});

describe('matching', () => {
  it('literals with escapes', () => {
    const grammar = 'root ::= "a\\"b\\\\c\\n\\t\\x41\\u00e9\\U0001F6A2\\[\\]\\-"';
    expect(matches(grammar, 'a"b\\c\n\tAé🚢[]-')).toBe(true);
    expect(prefix(grammar, 'a"b\\')).toBe(true);
    expect(prefix(grammar, 'a"b/')).toBe(false);
    expect(matches(grammar, 'a"b\\c\n\tAé🚢[]')).toBe(false);
    expect(matches('root ::= "ünï"', 'ünï')).toBe(true);
  });

  it('character classes: ranges, lists, negation, escapes and any character', () => {
    expect(matches('root ::= [a-cx]', 'b')).toBe(true);
    expect(matches('root ::= [a-cx]', 'x')).toBe(true);
    expect(matches('root ::= [a-cx]', 'd')).toBe(false);
    expect(matches('root ::= [^a-c"]', 'd')).toBe(true);
    expect(matches('root ::= [^a-c"]', '"')).toBe(false);
    expect(matches('root ::= [^a-c"]', 'é')).toBe(true);
    expect(matches('root ::= [\\]\\-]', ']')).toBe(true);
    expect(matches('root ::= [\\]\\-]', '-')).toBe(true);
    expect(matches('root ::= [a-]', '-')).toBe(true);
    expect(matches('root ::= [\\x00-\\x1F]', '\u0007')).toBe(true);
    expect(matches('root ::= . .', '🚢x')).toBe(true);
    expect(matches('root ::= . .', '🚢')).toBe(false);
  });

  it('repetitions *, +, ?, {m}, {m,}, {m,n}', () => {
    const counts = (grammar: string) => [0, 1, 2, 3, 4, 5].filter((n) => matches(grammar, 'a'.repeat(n)));
    expect(counts('root ::= "a"*')).toEqual([0, 1, 2, 3, 4, 5]);
    expect(counts('root ::= "a"+')).toEqual([1, 2, 3, 4, 5]);
    expect(counts('root ::= "a"?')).toEqual([0, 1]);
    expect(counts('root ::= "a"{3}')).toEqual([3]);
    expect(counts('root ::= "a"{0}')).toEqual([0]);
    expect(counts('root ::= "a"{2,}')).toEqual([2, 3, 4, 5]);
    expect(counts('root ::= "a"{1,3}')).toEqual([1, 2, 3]);
    expect(counts('root ::= "a"{0,2}')).toEqual([0, 1, 2]);
    expect(counts('root ::= ("a" "a"){1,2}')).toEqual([2, 4]);
    expect(counts('root ::= "a"{ 1 , 2 }')).toEqual([1, 2]);
    // A bound over llama.cpp's threshold means no bound.
    expect(matches('root ::= "a"{0,5000}', 'a'.repeat(2500))).toBe(true);
  });

  it('alternations and nested rules, with what may end where', () => {
    const grammar = 'root ::= item ("," item)*\nitem ::= "yes" | "no" | num\nnum ::= [1-9] [0-9]* | "0"';
    const m = gbnfMatcher(grammar);
    expect(m.canEnd).toBe(false);
    expect(m.allows('y')).toBe(true);
    expect(m.allows('x')).toBe(false);
    m.accept('ye');
    expect(m.canEnd).toBe(false);
    expect(m.allows('s,no,10')).toBe(true);
    m.accept('s');
    expect(m.canEnd).toBe(true);
    m.accept(',0');
    expect(m.canEnd).toBe(true);
    expect(m.allows('0')).toBe(false);
    expect(m.allows(',01')).toBe(false);
    expect(() => m.accept('x')).toThrow(expect.objectContaining({ code: 'llm/bad-grammar' }) as Error);
    // A failed accept leaves the state as it was.
    m.accept(',120');
    expect(m.canEnd).toBe(true);
    expect(matches(grammar, 'no,yes,7')).toBe(true);
    expect(matches(grammar, 'no,')).toBe(false);
    expect(matches('root ::= a\na ::= "x" a | ""', 'xxx')).toBe(true);
    expect(matches('root ::= "" | "a"', '')).toBe(true);
  });

  it('judges token pieces as llama.cpp: partial UTF-8 must be a valid start of an allowed character', () => {
    const bytes = (...b: number[]) => new Uint8Array(b);
    const ship = new TextEncoder().encode('🚢'); // F0 9F 9A A2
    const m = gbnfMatcher('root ::= "a" [^\\x00-\\x7F] "b"');
    m.acceptBytes(bytes(0x61));
    expect(m.allowsPiece(ship.subarray(0, 2))).toBe(true);
    expect(m.allowsPiece(bytes(0xc3))).toBe(true); // é starts like this
    expect(m.allowsPiece(bytes(0xc1))).toBe(false); // an overlong encoding of a 7-bit character
    expect(m.allowsPiece(bytes(0x9f))).toBe(false); // a continuation byte with nothing to continue
    expect(m.allowsPiece(bytes(0x62))).toBe(false);
    expect(m.allowsPiece(bytes())).toBe(false);
    expect(m.allowsPiece(bytes(0))).toBe(false);
    m.acceptBytes(ship.subarray(0, 2));
    expect(m.canEnd).toBe(false);
    expect(m.allowsPiece(bytes(0x62))).toBe(false); // the character is not finished
    expect(m.allowsPiece(bytes(0x9a))).toBe(true);
    expect(m.allowsPiece(bytes(0x9a, 0xa2, 0x62))).toBe(true);
    expect(m.allowsPiece(bytes(0x9a, 0x62))).toBe(false); // invalid: a continuation byte was expected
    m.acceptBytes(bytes(0x9a, 0xa2, 0x62));
    expect(m.canEnd).toBe(true);
    // A partial sequence that can only become an ASCII-range character is refused where only ASCII is allowed.
    expect(gbnfMatcher('root ::= [a-z]').allowsPiece(bytes(0xe2))).toBe(false);
    expect(gbnfMatcher('root ::= [a-z]').allowsPiece(bytes(0x71))).toBe(true);
  });
});

describe('the grammars Ferry writes', () => {
  const schemas: [string, unknown, unknown[], string[]][] = [
    [
      'an object with required and optional members',
      { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0, maximum: 130 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 } }, required: ['name'], additionalProperties: false },
      [{ name: 'ann' }, { name: 'b\n"o"b', age: 42 }, { name: '', tags: ['a', 'b', 'a'] }, { name: 'é🚢', age: 0, tags: [] }],
      ['{"age": 3', '{"name": "x", "age": 131}', '{"name": "x", "age": -1', '{"name": 1', '{"name": "123456789"', '{"name": "x", "tags": ["c"', '{"name": "x", "zzz', '{"name": "x"}x', '{"name": "\\q'],
    ],
    [
      'numbers, booleans, nulls and unions',
      { type: 'array', prefixItems: [{ type: 'number' }, { type: 'boolean' }, { type: ['string', 'null'] }, { anyOf: [{ type: 'integer', minimum: -5, maximum: 5 }, { const: 'x' }] }] },
      [[1.5, true, null, -5], [-0.25e3, false, 'hi', 'x'], [0, true, '', 5]],
      ['[01', '[1.,', '[1, tru ', '[1, true, nul ', '[1, true, null, 6]', '[1, true, null, -6', '[1, true, null, "y"', '[1, true, null, 1, 2'],
    ],
    [
      'free-form values, nested',
      { type: 'object', properties: { data: {} }, required: ['data'] },
      [{ data: { a: [1, { b: null }], c: 'd' } }, { data: [] }, { data: 'x' }],
      ['{"data": {1', '{"data": [,', '{"data": {"a" 1', '{"data": tru}', '{"data": [1]]'],
    ],
  ];

  it.each(schemas)('%s: valid values are accepted whole, invalid prefixes refused', (_name, schema, valid, invalid) => {
    const grammar = jsonSchemaGrammar(schema);
    for (const value of valid) {
      expect(checkJsonSchema(schema, value)).toEqual([]);
      for (const text of [JSON.stringify(value), JSON.stringify(value, null, 1).replace(/\n */g, ' ')]) {
        expect(matches(grammar, text), text).toBe(true);
        // Every prefix, too: the matcher never refuses a text on its way to a valid one.
        for (let i = 1; i < text.length; i++) expect(prefix(grammar, text.slice(0, i)), text.slice(0, i)).toBe(true);
      }
    }
    for (const text of invalid) expect(prefix(grammar, text), text).toBe(false);
  });

  it('tool-call grammars admit calls of the granted tools with valid arguments only', () => {
    const tools: ToolSpec[] = [notesSpec, workspaceSpec];
    const { gbnf } = toolCallGrammar(tools, { withOpenTag: true, budget: 400 });
    const m = gbnfMatcher(gbnf);
    const tool = tools[0]!;
    expect(m.allows(`${TOOL_CALL_OPEN}{"name": "${tool.name}"`)).toBe(true);
    expect(m.allows(`${TOOL_CALL_OPEN}{"name": "nope"`)).toBe(false);
    expect(m.allows('{"name"')).toBe(false);
    const open = gbnfMatcher(toolCallGrammar(tools, { withOpenTag: false, budget: 400 }).gbnf);
    expect(open.allows(`{"name": "${tool.name}", "arguments": {`)).toBe(true);
    expect(open.allows(`{"name": "${tool.name}", "arguments": [`)).toBe(false);
    expect(open.canEnd).toBe(false);
  });

  it('follows a whole tool call through to its closing tag', () => {
    const tool: ToolSpec = { name: 'add', description: 'adds', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'], additionalProperties: false } };
    const { gbnf } = toolCallGrammar([tool], { withOpenTag: true, budget: 200 });
    const call = `${TOOL_CALL_OPEN}{"name": "add", "arguments": {"a": 1, "b": -20}}${TOOL_CALL_CLOSE}`;
    expect(matches(gbnf, call)).toBe(true);
    expect(matches(gbnf, call.replace('-20', '"x"'))).toBe(false);
    expect(prefix(gbnf, call.replace('"b"', '"c"'))).toBe(false);
  });
});

describe('size', () => {
  it('follows a long string through a bounded repetition without losing its place', () => {
    const m: GbnfMatcher = gbnfMatcher(jsonSchemaGrammar({ type: 'string', maxLength: 300 }, { maxString: 300 }));
    m.accept('"');
    for (let i = 0; i < 300; i++) m.accept(i % 2 ? 'x' : '\\u00e9');
    expect(m.allows('x')).toBe(false);
    m.accept('"');
    expect(m.canEnd).toBe(true);
  });
});
