import Fastify, { type FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal } from '../../support/refusal.ts';
import { generateAll, preparePrompt, type Engine } from '../../../src/core/llm/index.ts';
import { openAiApi } from '../../../server/api/openai.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { createOpenAiEngine } from '../../../server/llm/openai-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

const MODEL = 'ferry-tiny';
let models: Awaited<ReturnType<typeof modelDir>>;
let engine: NodeLlamaEngine;
let app: FastifyInstance;
let baseURL: string;
let client: OpenAI;

beforeAll(async () => {
  models = await modelDir();
  engine = await cpuEngine(await models.model('tiny.gguf'), { slots: 2 });
  app = Fastify();
  await app.register(openAiApi, { engine, modelName: MODEL });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  baseURL = `${address}/v1`;
  client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await app?.close();
  await engine?.dispose();
  await models?.cleanup();
});

const messages = [
  { role: 'system' as const, content: 'You are a ferry.' },
  { role: 'user' as const, content: 'hello world' },
];

describe('the OpenAI-compatible endpoint, through the official openai client', () => {
  it('lists the model', async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL]);
  });

  it('answers a chat completion exactly as the engine does, with usage', async () => {
    const direct = await generateAll(engine, { prompt: { messages }, maxTokens: 24 });
    const answer = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 24, temperature: 0 });
    expect(answer.choices[0]?.message.content).toBe(direct.text);
    expect(answer.choices[0]?.finish_reason).toBe('length');
    expect(answer.usage).toMatchObject({ prompt_tokens: direct.stats.promptTokens, completion_tokens: 24, total_tokens: direct.stats.promptTokens + 24 });
  });

  it('streams a chat completion, ending with usage', async () => {
    const direct = await generateAll(engine, { prompt: { messages }, maxTokens: 30 });
    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 30, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let chunks = 0;
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(direct.text);
    expect(chunks).toBeGreaterThan(10);
    expect(finish).toBe('length');
    expect(usage?.completion_tokens).toBe(30);
  });

  it('completes a token-id prompt and honours stop and a JSON response format', async () => {
    const ids = await preparePrompt(engine, { text: 'Once upon a time' });
    const direct = await generateAll(engine, { prompt: { tokens: ids }, maxTokens: 20 });
    const completion = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 20, temperature: 0 });
    expect(completion.choices[0]?.text).toBe(direct.text);
    const stop = direct.text.slice(8, 11);
    const stopped = await client.completions.create({ model: MODEL, prompt: ids, max_tokens: 20, stop: [stop] });
    expect(stopped.choices[0]).toMatchObject({ text: direct.text.slice(0, direct.text.indexOf(stop)), finish_reason: 'stop' });
    const json = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 60,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema: { type: 'object', properties: { yes: { type: 'boolean' } }, required: ['yes'] } } },
    });
    expect(typeof (JSON.parse(json.choices[0]?.message.content ?? '') as { yes: unknown }).yes).toBe('boolean');
  });

  it('refuses an unknown model and a bad body with OpenAI-style errors', async () => {
    await expect(client.chat.completions.create({ model: 'gpt-4', messages, max_tokens: 4 })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await client.chat.completions.create({ model: MODEL, messages, max_tokens: -1 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('api/bad-request');
    const overflow = await client.completions.create({ model: MODEL, prompt: new Array<number>(engine.info.contextSize).fill(300), max_tokens: 4 }).catch((e: unknown) => e);
    expect((overflow as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('llm/context-overflow');
  });

  it('stops generating when the client goes away', async () => {
    // The same engine behind a second endpoint that records how each generation ended.
    const endings: string[] = [];
    const recording: Engine = {
      info: engine.info,
      tokenize: (text, options) => engine.tokenize(text, options),
      detokenize: (ids) => engine.detokenize(ids),
      dispose: async () => undefined,
      async *generate(request) {
        let ending = 'closed by the server';
        try {
          for await (const event of engine.generate(request)) {
            if (event.type === 'done') ending = `${event.finishReason} after ${event.tokens.length}`;
            yield event;
          }
        } finally {
          endings.push(ending);
        }
      },
    };
    const second = Fastify();
    await second.register(openAiApi, { engine: recording, modelName: MODEL });
    try {
      const secondClient = new OpenAI({ baseURL: `${await second.listen({ host: '127.0.0.1', port: 0 })}/v1`, apiKey: 'unused', maxRetries: 0 });
      const controller = new AbortController();
      const stream = await secondClient.chat.completions.create({ model: MODEL, messages, max_tokens: 480, stream: true }, { signal: controller.signal });
      let chunks = 0;
      await (async () => {
        for await (const _chunk of stream) if (++chunks === 3) controller.abort();
      })().catch(() => undefined);
      await expect.poll(() => endings.length, { timeout: 30_000 }).toBe(1);
      expect(endings[0]).toMatch(/^cancelled after \d+$/);
      expect(Number(endings[0]?.split(' ').at(-1))).toBeLessThan(480);
      // The slot came free: two generations at once still finish.
      const again = await Promise.all([0, 1].map(() => secondClient.chat.completions.create({ model: MODEL, messages, max_tokens: 8 })));
      expect(again.map((a) => a.usage?.completion_tokens)).toEqual([8, 8]);
    } finally {
      await second.close();
    }
  });
});

describe('the OpenAI-compatible engine against the relay endpoint', () => {
  it('reports the upstream model and generates what the engine behind it generates', async () => {
    const remote = await createOpenAiEngine({ baseUrl: baseURL, model: MODEL });
    expect(remote.info).toMatchObject({ id: 'openai', kind: 'remote', model: MODEL, tokenizerId: '', kvState: false, contextSize: engine.info.contextSize });
    const direct = await generateAll(engine, { prompt: { messages }, maxTokens: 24 });
    const tokens: string[] = [];
    const viaChat = await generateAll(remote, { prompt: { messages }, maxTokens: 24 }, (e) => tokens.push(e.text));
    expect(viaChat.text).toBe(direct.text);
    expect(tokens.join('')).toBe(direct.text);
    expect(viaChat.finishReason).toBe('length');
    expect(viaChat.stats).toMatchObject({ promptTokens: direct.stats.promptTokens, completionTokens: 24 });
    expect(viaChat.stats.ttftMs).toBeGreaterThan(0);
    const ids = await preparePrompt(engine, { text: 'the ferry' });
    const viaIds = await generateAll(remote, { prompt: { tokens: ids }, maxTokens: 16 });
    expect(viaIds.text).toBe((await generateAll(engine, { prompt: { tokens: ids }, maxTokens: 16 })).text);
    const viaText = await generateAll(remote, { prompt: { text: 'the ferry' }, maxTokens: 16 });
    expect(viaText.text).toBe(viaIds.text);
  });

  it('stops, cancels, and constrains through the upstream', async () => {
    const remote = await createOpenAiEngine({ baseUrl: baseURL, model: MODEL });
    const full = await generateAll(remote, { prompt: { messages }, maxTokens: 30 });
    const stop = full.text.slice(10, 13);
    const stopped = await generateAll(remote, { prompt: { messages }, maxTokens: 30, stop: [stop] });
    expect(stopped).toMatchObject({ text: full.text.slice(0, full.text.indexOf(stop)), finishReason: 'stop' });
    const controller = new AbortController();
    let seen = 0;
    const cancelled = await generateAll(remote, { prompt: { messages }, maxTokens: 400, signal: controller.signal }, () => {
      if (++seen === 3) controller.abort();
    });
    expect(cancelled.finishReason).toBe('cancelled');
    expect(full.text.startsWith(cancelled.text)).toBe(true);
    const json = await generateAll(remote, { prompt: { messages }, maxTokens: 60, grammar: { kind: 'json-schema', schema: { type: 'object', properties: { n: { enum: [1, 2] } }, required: ['n'] } } });
    expect([1, 2]).toContain((JSON.parse(json.text) as { n: unknown }).n);
  });

  it('fails with typed errors for a wrong model, a dead upstream, and a refused request', async () => {
    expect((await refusal(() => createOpenAiEngine({ baseUrl: baseURL, model: 'nope' }))).code).toBe('llm/unknown-model');
    expect((await refusal(() => createOpenAiEngine({ baseUrl: 'http://127.0.0.1:9/v1', model: MODEL }))).code).toBe('llm/upstream-unreachable');
    expect((await refusal(() => createOpenAiEngine({ baseUrl: 'ftp://x', model: MODEL }))).code).toBe('llm/bad-option');
    const remote = await createOpenAiEngine({ baseUrl: baseURL, model: MODEL });
    const error = await refusal(() => generateAll(remote, { prompt: { tokens: new Array<number>(engine.info.contextSize).fill(300) }, maxTokens: 1 }));
    expect(error.code).toBe('llm/upstream-error');
    expect(error.message).toContain('400');
    expect((await refusal(() => remote.tokenize())).code).toBe('llm/unsupported');
  });
});
