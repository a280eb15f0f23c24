/**
 * Tool calls that cannot break, on node-llama-cpp with generated random-weight models: the JSON Schema → GBNF
 * converter admits only valid values; every built-in agent's calls over 50 steps are schema-valid; a generation cut
 * inside a call continues to the same ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll } from '../../../src/core/llm/index.ts';
import { integerRange, jsonSchemaGrammar } from '../../../src/core/llm/json-grammar.ts';
import { parseToolCalls, TOOL_CALL_OPEN, type ToolSpec } from '../../../src/core/llm/tool-calls.ts';
import { generateWithTools, type ToolGenerationEvent } from '../../../src/core/llm/tool-generation.ts';
import { toolCallGrammar } from '../../../src/core/llm/tool-grammar.ts';
import { checkJsonSchema } from '../../../src/core/runtime/json-schema.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { docsSpec } from '../../../components/docs/spec.ts';
import { jsSpec } from '../../../components/js/spec.ts';
import { notesSpec } from '../../../components/notes/spec.ts';
import { workspaceSpec } from '../../../components/workspace/spec.ts';
import { runWorkload } from '../../../eval/run-workload.ts';
import { WORKLOADS } from '../../../eval/workloads.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

const TOOLS: ToolSpec[] = [notesSpec, workspaceSpec, docsSpec, jsSpec];
const PROMPT = '<|im_start|>user\nwhat is in the notes<|im_end|>\n<|im_start|>assistant\n';

let models: Awaited<ReturnType<typeof modelDir>>;
let engine: NodeLlamaEngine;
beforeAll(async () => {
  models = await modelDir();
  // Prompts carry every tool's schema: a context long enough for 50 steps of conversation.
  engine = await cpuEngine(await models.model('tools.gguf', { ctx: 8192 }), { contextSize: 8192, slots: 2 });
});
afterAll(async () => {
  await engine?.dispose();
  await models?.cleanup();
});

async function toolRun(request: Parameters<typeof generateWithTools>[1], choice: 'auto' | 'required', sofar?: Parameters<typeof generateWithTools>[3], abortAfter?: number) {
  const controller = new AbortController();
  let seen = 0;
  let done: Extract<ToolGenerationEvent, { type: 'done' }> | undefined;
  for await (const event of generateWithTools(engine, { ...request, signal: controller.signal }, { tools: TOOLS, choice }, sofar)) {
    if (event.type === 'done') done = event;
    else if (++seen === abortAfter) controller.abort();
  }
  return done!;
}

describe('JSON Schema → GBNF', () => {
  it('integer ranges cover exactly their bounds', () => {
    expect(integerRange(1, 20)).toBe('[1-9] | ("1" [0-9]) | ("2" "0")');
    expect(integerRange(-3, 3)).toBe('("-" [1-3]) | [0-3]');
    expect(integerRange(7, 7)).toBe('"7"');
    expect(() => integerRange(5, 4)).toThrow(/there is none/);
  });

  it('whatever a model writes under the grammar validates, sampled or greedy', async () => {
    const schemas: unknown[] = [
      { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 1234 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, minItems: 1, maxItems: 3 } }, required: ['n', 'tags'] },
      { anyOf: [{ type: 'string', minLength: 2, maxLength: 5 }, { type: 'null' }, { type: 'boolean' }] },
      { $defs: { point: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number', exclusiveMinimum: 0 } }, required: ['x', 'y'], additionalProperties: false } }, type: 'array', items: { $ref: '#/$defs/point' }, maxItems: 2 },
      { type: 'object' },
      notesSpec.parameters,
    ];
    for (const schema of schemas) {
      const grammar = { kind: 'gbnf' as const, text: jsonSchemaGrammar(schema, { maxString: 12, maxItems: 4, maxDepth: 2 }) };
      for (const [temperature, seed] of [[0, 0], [1, 1], [1.5, 2], [1.5, 3]] as const) {
        const done = await generateAll(engine, { prompt: { text: `json ${seed}:` }, maxTokens: 400, temperature, seed, grammar });
        expect(done.finishReason, done.text).toBe('stop');
        expect(checkJsonSchema(schema, JSON.parse(done.text)), done.text).toEqual([]);
      }
    }
  });

  it('a schema no value matches is refused with a typed error', async () => {
    expect(() => jsonSchemaGrammar({ enum: [] })).toThrow(/empty enum/);
    expect(() => jsonSchemaGrammar({ type: 'object', properties: {}, required: ['a'] })).toThrow(/requires "a"/);
    await expect(generateAll(engine, { prompt: { text: 'x' }, maxTokens: 8, grammar: { kind: 'json-schema', schema: { $ref: '#/nowhere' } } })).rejects.toMatchObject({ code: 'llm/bad-grammar' });
  });

  it('the call grammar fits the budget: the longer the budget, the longer its strings', () => {
    const small = toolCallGrammar(TOOLS, { withOpenTag: true, budget: 400 });
    const large = toolCallGrammar(TOOLS, { withOpenTag: true, budget: 4000 });
    expect(small.longest).toBeLessThanOrEqual(400);
    expect(large.longest).toBeLessThanOrEqual(4000);
    expect(large.longest).toBeGreaterThan(small.longest);
  });
});

describe('constrained tool calls', () => {
  it('unconstrained, the random model does not write a valid call; constrained, it always does', async () => {
    const free = await generateAll(engine, { prompt: { text: `${PROMPT}${TOOL_CALL_OPEN}` }, maxTokens: 96 });
    expect(parseToolCalls(`${TOOL_CALL_OPEN}${free.text}`).calls).toEqual([]);
    for (let seed = 0; seed < 4; seed++) {
      const done = await toolRun({ prompt: { text: `${PROMPT}${seed}` }, maxTokens: 200, temperature: 0.8, seed }, 'required');
      const parsed = parseToolCalls(done.text, new Set(TOOLS.map((t) => t.name)));
      expect(parsed.errors).toEqual([]);
      expect(parsed.calls).toHaveLength(1);
      const call = parsed.calls[0]!;
      expect(checkJsonSchema(TOOLS.find((t) => t.name === call.name)!.parameters, call.arguments)).toEqual([]);
      expect(done.calls).toBe(1);
      expect(done.openCall).toBeUndefined();
    }
  });

  it('a generation cut inside a call continues to the same ids and text', async () => {
    const request = { prompt: { text: PROMPT }, maxTokens: 200 };
    const whole = await toolRun(request, 'required');
    expect(whole.tokens.length).toBeGreaterThan(12);
    const cut = await toolRun(request, 'required', undefined, 10);
    expect(cut.finishReason).toBe('cancelled');
    expect(cut.openCall).toEqual({ tokens: 0, text: 0 });
    const resumed = await toolRun(request, 'required', { tokens: cut.tokens, text: cut.text, ...(cut.openCall ? { openCall: cut.openCall } : {}) });
    expect(resumed.tokens).toEqual(whole.tokens);
    expect(resumed.text).toBe(whole.text);
  });

  it.each(WORKLOADS.map((w) => [w.name, w] as const))('%s: every call the model writes over 50 steps is schema-valid', async (_name, workload) => {
    const result = await runWorkload(workload, engine, { steps: 50, toolChoice: 'required', sampling: { maxTokens: 128 } });
    expect(result.steps).toBe(50);
    expect(result.bad).toEqual([]);
    expect(result.calls).toBeGreaterThan(0);
    expect(result.valid).toBe(result.calls);
  }, 300_000);
});
