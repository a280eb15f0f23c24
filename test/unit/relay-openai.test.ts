/**
 * `ferry relay --model FILE` hosts the model behind the OpenAI-compatible /v1 API on the relay's one port: the
 * official openai client lists it and streams a chat completion, next to the relay's own API; function calling and
 * JSON response formats go through the grammar machinery, so even a random-weight model's calls are valid.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChatCompletionTool } from 'openai/resources/chat/completions';
import { checkJsonSchema } from '../../src/core/runtime/json-schema.ts';
import OpenAI from 'openai';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;

beforeAll(async () => {
  dirs = await makeTempDirs();
  const model = path.join(dirs.root, 'tiny.gguf');
  await writeFile(model, generateTinyModel({ ctx: 2048 }));
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model });
}, 120_000);

afterAll(async () => {
  await relay?.close();
  await dirs?.cleanup();
});

test('the official openai client streams a chat completion from the relay', async () => {
  const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const models = await client.models.list();
  expect(models.data).toHaveLength(1);
  const stream = await client.chat.completions.create({
    model: models.data[0]!.id,
    messages: [{ role: 'user', content: 'hello ferry' }],
    max_tokens: 16,
    temperature: 0,
    stream: true,
  });
  const parts: string[] = [];
  let finish: string | null | undefined;
  for await (const chunk of stream) {
    parts.push(chunk.choices[0]?.delta.content ?? '');
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  expect(parts.join('').length).toBeGreaterThan(0);
  expect(parts.filter((p) => p.length > 0).length).toBeGreaterThan(1);
  expect(finish).toBe('length');
  // The relay's own API and health answer on the same port.
  expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  expect((await fetch(`${relay.url}/metrics`)).status).toBe(200);
});

const TOOLS: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city.',
      parameters: { type: 'object', properties: { city: { type: 'string', minLength: 1 }, unit: { enum: ['c', 'f'] } }, required: ['city'], additionalProperties: false },
    },
  },
  {
    type: 'function',
    function: {
      name: 'book_ferry',
      description: 'Books seats on a crossing.',
      parameters: { type: 'object', properties: { route: { type: 'string' }, seats: { type: 'integer', minimum: 1, maximum: 9 }, return: { type: 'boolean' } }, required: ['route', 'seats'] },
    },
  },
];

function checkCall(call: { function: { name: string; arguments: string } }): void {
  const tool = TOOLS.find((t) => t.type === 'function' && t.function.name === call.function.name);
  expect(tool, call.function.name).toBeDefined();
  expect(checkJsonSchema(tool!.type === 'function' ? tool!.function.parameters : {}, JSON.parse(call.function.arguments)), call.function.arguments).toEqual([]);
}

test('function calling with the official client: 50 required calls, streamed and not, all schema-valid', async () => {
  const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const model = (await client.models.list()).data[0]!.id;
  for (let i = 0; i < 25; i++) {
    const messages = [{ role: 'user' as const, content: `request number ${i}` }];
    const answer = await client.chat.completions.create({ model, messages, tools: TOOLS, tool_choice: 'required', max_tokens: 200, temperature: 0.7, seed: i });
    const choice = answer.choices[0]!;
    expect(choice.finish_reason, JSON.stringify(choice.message)).toBe('tool_calls');
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('not a function call');
    expect(call.id).toMatch(/^call_/);
    checkCall(call);

    // Streamed: the client's own helper assembles the call from the chunks.
    const stream = client.chat.completions.stream({ model, messages, tools: TOOLS, tool_choice: 'required', max_tokens: 200, seed: i });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.finish_reason).toBe('tool_calls');
    const streamed = final.choices[0]!.message.tool_calls ?? [];
    expect(streamed).toHaveLength(1);
    checkCall(streamed[0] as { function: { name: string; arguments: string } });
  }
}, 300_000);

test('a named tool_choice, a conversation with earlier calls and results, and tool_choice none', async () => {
  const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const model = (await client.models.list()).data[0]!.id;
  const history = [
    { role: 'user' as const, content: 'weather in Oslo' },
    { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
    { role: 'tool' as const, tool_call_id: 'call_1', content: '{"temp": 4}' },
    { role: 'user' as const, content: 'book two seats to Nesodden' },
  ];
  const named = await client.chat.completions.create({ model, messages: history, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'book_ferry' } }, max_tokens: 200 });
  const call = named.choices[0]!.message.tool_calls![0]!;
  if (call.type !== 'function') throw new Error('not a function call');
  expect(call.function.name).toBe('book_ferry');
  checkCall(call);
  const none = await client.chat.completions.create({ model, messages: history, tools: TOOLS, tool_choice: 'none', max_tokens: 8 });
  expect(none.choices[0]!.message.tool_calls ?? []).toEqual([]);
  expect(none.choices[0]!.finish_reason).toBe('length');
  await expect(client.chat.completions.create({ model, messages: history, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } }, max_tokens: 8 })).rejects.toMatchObject({ status: 400 });
});

test('response_format json_schema and json_object: the reply parses and validates', async () => {
  const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const model = (await client.models.list()).data[0]!.id;
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0, maximum: 120 } }, required: ['name', 'age'], additionalProperties: false };
  for (const stream of [false, true]) {
    const request = { model, messages: [{ role: 'user' as const, content: 'a person' }], max_tokens: 200, response_format: { type: 'json_schema' as const, json_schema: { name: 'person', schema } } };
    const text = stream
      ? (await client.chat.completions.stream(request).finalChatCompletion()).choices[0]!.message.content
      : (await client.chat.completions.create(request)).choices[0]!.message.content;
    expect(checkJsonSchema(schema, JSON.parse(text ?? '')), text ?? '').toEqual([]);
  }
  const object = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'anything' }], max_tokens: 300, response_format: { type: 'json_object' } });
  const value: unknown = JSON.parse(object.choices[0]!.message.content ?? '');
  expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
});
