/**
 * `ferry relay --model FILE` hosts the model behind the OpenAI-compatible /v1 API on the relay's one port: the
 * official openai client lists it and streams a chat completion, next to the relay's own API.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
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
  await writeFile(model, generateTinyModel({}));
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
