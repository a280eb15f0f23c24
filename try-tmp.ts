import { writeFileSync } from 'node:fs';
import { generateTinyModel } from './src/core/llm/gguf/index.ts';
import { cpuEngine } from './test/unit/llm/fixtures.ts';
import { generateWithTools } from './src/core/llm/tool-generation.ts';
import { toolCallGrammar } from './src/core/llm/tool-grammar.ts';
writeFileSync('/tmp/gt/m2k.gguf', generateTinyModel({ ctx: 2048 }));
const engine = await cpuEngine('/tmp/gt/m2k.gguf');
const tools = [{ name: 'get_weather', description: 'x', parameters: { type: 'object', properties: { city: { type: 'string', minLength: 1 }, unit: { enum: ['c', 'f'] } }, required: ['city'], additionalProperties: false } },
 { name: 'book_ferry', description: 'y', parameters: { type: 'object', properties: { route: { type: 'string' }, seats: { type: 'integer', minimum: 1, maximum: 9 }, return: { type: 'boolean' } }, required: ['route', 'seats'] } }];
const g = toolCallGrammar(tools, { withOpenTag: true, budget: 96 }); console.log(g.longest); console.log(g.gbnf);
for await (const e of generateWithTools(engine, { prompt: { messages: [{ role: 'user', content: 'request number 0' }] }, maxTokens: 96, temperature: 0.7, seed: 0 }, { tools, choice: 'required' })) if (e.type === 'done') console.log(e.finishReason, e.tokens.length, JSON.stringify(e.text));
await engine.dispose();
