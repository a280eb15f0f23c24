import { FerryError } from '../errors.ts';
import { DEFAULT_JSON_LIMITS, GbnfBuilder, literal, type JsonGrammarLimits } from './json-grammar.ts';
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN, type ToolSpec } from './tool-calls.ts';

/**
 * The grammar of one tagged tool call (tool-calls.ts): `{"name": <a granted tool>, "arguments": <its schema>}`
 * then the closing tag, optionally after the opening tag. Built so that the whole call fits a token budget: the
 * longest text the grammar admits (strings bounded) is at most `budget` characters, and models write at least one
 * character per token outside multi-byte text, so a constrained call ends before the budget does.
 */

export interface ToolGrammarOptions {
  /** Start with the opening tag (a reply that must be a call); otherwise the tag has already been written. */
  readonly withOpenTag: boolean;
  /** Tokens left for the call. */
  readonly budget: number;
  readonly limits?: Partial<JsonGrammarLimits>;
}

export interface ToolGrammar {
  readonly gbnf: string;
  /** The longest call the grammar admits, in characters. */
  readonly longest: number;
}

export function toolCallGrammar(tools: readonly ToolSpec[], options: ToolGrammarOptions): ToolGrammar {
  if (tools.length === 0) throw new FerryError('llm/bad-grammar', 'A tool-call grammar needs at least one tool.');
  const ceiling = options.limits?.maxString ?? DEFAULT_JSON_LIMITS.maxString;
  // The longest string bound that still fits the budget (the grammar's length grows with it).
  let low = 0;
  let high = ceiling;
  let best = build(tools, options, 0);
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    const candidate = build(tools, options, mid);
    if (candidate.longest <= options.budget) {
      best = candidate;
      low = mid;
    } else high = mid - 1;
  }
  return best;
}

function build(tools: readonly ToolSpec[], options: ToolGrammarOptions, maxString: number): ToolGrammar {
  const builder = new GbnfBuilder({ ...options.limits, maxString });
  const alternatives = tools.map((tool) => {
    const args = builder.schema(tool.parameters, `${tool.name}-args`, tool.parameters);
    const name = JSON.stringify(tool.name);
    return builder.rule(`${tool.name}-call`, `${literal(name)} ws "," ws "\\"arguments\\"" ws ":" ws ${args}`, name.length + 15 + builder.longest(args));
  });
  const call = builder.rule('call', `"{" ws "\\"name\\"" ws ":" ws (${alternatives.join(' | ')}) ws "}"`, 12 + Math.max(...alternatives.map((a) => builder.longest(a))));
  const open = options.withOpenTag ? `${literal(TOOL_CALL_OPEN)} ` : '';
  const longest = (options.withOpenTag ? TOOL_CALL_OPEN.length : 0) + 2 + builder.longest(call) + TOOL_CALL_CLOSE.length;
  return { gbnf: builder.grammar(`${open}ws ${call} ws ${literal(TOOL_CALL_CLOSE)}`), longest };
}
