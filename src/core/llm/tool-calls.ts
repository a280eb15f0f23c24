/**
 * The one tool-call format every model is asked to use: a JSON object inside <tool_call> tags (the tagged-JSON
 * convention many instruct models are trained on). Parsing never throws: a malformed call becomes an error that
 * goes back to the model as an observation, so it can correct itself.
 */
export const TOOL_CALL_OPEN = '<tool_call>';
export const TOOL_CALL_CLOSE = '</tool_call>';

/** More calls than this in one reply is a runaway generation, not a plan. */
export const MAX_CALLS_PER_REPLY = 16;

export interface ToolSpec {
  name: string;
  description: string;
  /** JSON Schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export interface ToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

export interface ToolCallError {
  /** 0-based position among the reply's tool-call blocks. */
  index: number;
  raw: string;
  problem: string;
}

export interface ParsedReply {
  /** The reply with every tool-call block removed, trimmed. */
  text: string;
  calls: ToolCall[];
  errors: ToolCallError[];
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseOne(raw: string, index: number, known: ReadonlySet<string> | undefined): ToolCall | ToolCallError {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    return { index, raw, problem: `not valid JSON (${(err as Error).message})` };
  }
  if (!isPlainObject(value)) return { index, raw, problem: 'not a JSON object' };
  const { name } = value;
  if (typeof name !== 'string' || name.length === 0) return { index, raw, problem: 'missing "name" (a non-empty string)' };
  if (known && !known.has(name)) return { index, raw, problem: `unknown tool "${name}"; available: ${[...known].join(', ')}` };
  let args = value.arguments ?? {};
  // Some models emit the arguments object as a JSON string; accept it when it decodes to an object.
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return { index, raw, problem: '"arguments" is a string that is not JSON' };
    }
  }
  if (!isPlainObject(args)) return { index, raw, problem: '"arguments" must be a JSON object' };
  return { name, arguments: args };
}

/** Splits a model's reply into its prose and its tool calls. `known` restricts calls to the granted tools. */
export function parseToolCalls(output: string, known?: ReadonlySet<string>): ParsedReply {
  const calls: ToolCall[] = [];
  const errors: ToolCallError[] = [];
  let text = '';
  let cursor = 0;
  for (let index = 0; ; index++) {
    const open = output.indexOf(TOOL_CALL_OPEN, cursor);
    if (open === -1) break;
    text += output.slice(cursor, open);
    const bodyStart = open + TOOL_CALL_OPEN.length;
    const close = output.indexOf(TOOL_CALL_CLOSE, bodyStart);
    if (close === -1) {
      errors.push({ index, raw: output.slice(bodyStart), problem: `unterminated: no ${TOOL_CALL_CLOSE} after the call` });
      cursor = output.length;
      break;
    }
    cursor = close + TOOL_CALL_CLOSE.length;
    if (index >= MAX_CALLS_PER_REPLY) {
      errors.push({ index, raw: '', problem: `more than ${MAX_CALLS_PER_REPLY} tool calls in one reply` });
      break;
    }
    const parsed = parseOne(output.slice(bodyStart, close).trim(), index, known);
    if ('problem' in parsed) errors.push(parsed);
    else calls.push(parsed);
  }
  text += output.slice(cursor);
  return { text: text.trim(), calls, errors };
}

/** The observation sent back to the model when its calls were malformed: what was wrong and the right form. */
export function describeToolCallErrors(errors: readonly ToolCallError[]): string {
  const lines = errors.map((e) => `- tool call #${e.index + 1}: ${e.problem}`);
  return [
    'Your tool call could not be run:',
    ...lines,
    `Write each call as ${TOOL_CALL_OPEN}{"name": "<tool>", "arguments": {…}}${TOOL_CALL_CLOSE} with valid JSON.`,
  ].join('\n');
}

/** The system-prompt section that tells a model which tools it has and how to call them. */
export function toolInstructions(tools: readonly ToolSpec[]): string {
  const specs = tools.map((t) => JSON.stringify({ name: t.name, description: t.description, parameters: t.parameters }));
  return [
    'You can call these tools:',
    ...specs,
    `To call a tool, write ${TOOL_CALL_OPEN}{"name": "<tool name>", "arguments": {<arguments as JSON>}}${TOOL_CALL_CLOSE}.`,
    'You may call several tools in one reply. Each result comes back in a message from the tool.',
  ].join('\n');
}
