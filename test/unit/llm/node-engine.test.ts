import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refusal } from '../../support/refusal.ts';
import { generateAll, preparePrompt, type GenerateEvent, type GenerateRequest } from '../../../src/core/llm/index.ts';
import { CHATML_TEMPLATE, tinyModelSpec, tinyVocabulary, TokenType } from '../../../src/core/llm/gguf/tiny-model.ts';
import { writeGguf } from '../../../src/core/llm/gguf/writer.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { greedyRuns } from '../../support/native-greedy.ts';
import { GREEDY_PROMPTS } from '../../support/prompts.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

const vocab = tinyVocabulary();
let models: Awaited<ReturnType<typeof modelDir>>;
let modelPath: string;
let engine: NodeLlamaEngine;

beforeAll(async () => {
  models = await modelDir();
  modelPath = await models.model('tiny.gguf');
  engine = await cpuEngine(modelPath, { slots: 2 });
});
afterAll(async () => {
  await engine?.dispose();
  await models?.cleanup();
});

async function events(request: GenerateRequest): Promise<GenerateEvent[]> {
  const out: GenerateEvent[] = [];
  for await (const event of engine.generate(request)) out.push(event);
  return out;
}

describe('node-llama-cpp engine: identity', () => {
  it('reports the model hash, tokenizer id, template and device', async () => {
    const sha = createHash('sha256').update(await readFile(modelPath)).digest('hex');
    expect(engine.info).toMatchObject({ id: 'node-llama-cpp', kind: 'native', model: sha, kvState: true, grammar: true, chatTemplate: CHATML_TEMPLATE, bosToken: '<s>', eosToken: '</s>', addBos: true, device: 'CPU, 1 thread' });
    expect(engine.info.contextSize).toBeGreaterThanOrEqual(512);
    expect(engine.info.tokenizerId).toMatch(/^tok1-[0-9a-f]{64}$/);
  });

  it('gives the same tokenizer id to an f16 model with other weights, another to a changed vocabulary', async () => {
    const other = await cpuEngine(await models.model('f16.gguf', { type: 'f16', seed: 9, embd: 32, heads: 2, kvHeads: 1, ff: 64 }), { slots: 1 });
    try {
      expect(other.info.tokenizerId).toBe(engine.info.tokenizerId);
      expect(other.info.model).not.toBe(engine.info.model);
    } finally {
      await other.dispose();
    }
    const spec = tinyModelSpec();
    const tokens = [...vocab.tokens];
    tokens[tokens.length - 1] = '▁zzz';
    const changed = path.join(models.dir, 'vocab.gguf');
    await writeFile(changed, writeGguf({ ...spec, metadata: spec.metadata.map(([k, v]) => [k, k === 'tokenizer.ggml.tokens' ? { type: 'string[]', value: tokens } : v] as const) }));
    const third = await cpuEngine(changed, { slots: 1 });
    try {
      expect(third.info.tokenizerId).not.toBe(engine.info.tokenizerId);
    } finally {
      await third.dispose();
    }
  });
});

describe('node-llama-cpp engine: generation', () => {
  it('generates greedily the same ids as the reference harness, streaming text that adds up', async () => {
    const reference = await greedyRuns(modelPath, GREEDY_PROMPTS, 48);
    for (const run of reference) {
      expect(await preparePrompt(engine, { text: run.prompt })).toEqual(run.promptTokens);
      const out = await events({ prompt: { text: run.prompt }, maxTokens: 48 });
      const done = out.at(-1);
      if (done?.type !== 'done') throw new Error('no done event');
      const tokens = out.filter((e) => e.type === 'token');
      expect(done.tokens).toEqual(run.tokens);
      expect(tokens.map((e) => e.id)).toEqual(run.tokens);
      expect(tokens.map((e) => e.text).join('')).toBe(done.text);
      expect(done.text.trimStart()).toBe((await engine.detokenize(run.tokens)).trimStart());
      expect(done.finishReason).toBe('length');
      expect(done.stats).toMatchObject({ promptTokens: run.promptTokens.length, completionTokens: 48 });
      expect(done.stats.decodeTps).toBeGreaterThan(0);
      expect(done.stats.ttftMs).toBeGreaterThan(0);
    }
  });

  it('renders messages with the chat template from the GGUF metadata', async () => {
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'hello world' },
    ];
    const ids = await preparePrompt(engine, { messages });
    const rendered = '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n';
    expect(ids).toEqual([1, ...(await engine.tokenize(rendered, { special: true }))]);
    expect(ids.filter((id) => id === 3)).toHaveLength(3); // <|im_start|> parsed as its special token
    expect(ids.filter((id) => id === 4)).toHaveLength(2); // <|im_end|>
    const fromMessages = await generateAll(engine, { prompt: { messages }, maxTokens: 16 });
    const fromTokens = await generateAll(engine, { prompt: { tokens: ids }, maxTokens: 16 });
    expect(fromMessages.tokens).toEqual(fromTokens.tokens);
    expect(fromMessages.stats.promptTokens).toBe(ids.length);
  });

  it('a model without a chat template refuses messages but takes text', async () => {
    const spec = tinyModelSpec();
    const file = path.join(models.dir, 'no-template.gguf');
    await writeFile(file, writeGguf({ ...spec, metadata: spec.metadata.filter(([k]) => k !== 'tokenizer.chat_template') }));
    const bare = await cpuEngine(file, { slots: 1 });
    try {
      expect(bare.info.chatTemplate).toBeUndefined();
      expect((await refusal(() => generateAll(bare, { prompt: { messages: [{ role: 'user', content: 'hi' }] }, maxTokens: 4 }))).code).toBe('llm/no-chat-template');
      expect((await generateAll(bare, { prompt: { text: 'hi' }, maxTokens: 4 })).tokens).toHaveLength(4);
    } finally {
      await bare.dispose();
    }
  });

  it('stops at a stop sequence however the tokens split it, keeping its ids', async () => {
    const full = await generateAll(engine, { prompt: { text: 'Once upon a time' }, maxTokens: 40 });
    // A stop string that starts inside one token and ends inside a later one.
    const start = Math.floor(full.text.length / 2);
    const stop = full.text.slice(start + 1, start + 6);
    const cut = full.text.indexOf(stop);
    const stopped = await events({ prompt: { text: 'Once upon a time' }, maxTokens: 40, stop: ['never-there', stop] });
    const done = stopped.at(-1);
    if (done?.type !== 'done') throw new Error('no done event');
    expect(done.finishReason).toBe('stop');
    expect(done.text).toBe(full.text.slice(0, cut));
    expect(stopped.filter((e) => e.type === 'token').map((e) => e.text).join('')).toBe(done.text);
    expect(done.tokens).toEqual(full.tokens.slice(0, done.tokens.length));
    expect(await engine.detokenize(done.tokens)).toContain(stop);
    // A stop string that never appears changes nothing.
    expect((await generateAll(engine, { prompt: { text: 'Once upon a time' }, maxTokens: 40, stop: ['Q!Q'] })).text).toBe(full.text);
  });

  it('cancels mid-generation and before it starts; the slot works afterwards', async () => {
    const controller = new AbortController();
    let seen = 0;
    const done = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 200, slot: 'cancel', signal: controller.signal }, () => {
      if (++seen === 5) controller.abort();
    });
    expect(done.finishReason).toBe('cancelled');
    expect(done.tokens.length).toBeGreaterThanOrEqual(5);
    expect(done.tokens.length).toBeLessThan(10);
    const pre = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 20, signal: AbortSignal.abort() });
    expect(pre).toMatchObject({ finishReason: 'cancelled', tokens: [], text: '' });
    const after = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 20, slot: 'cancel' });
    const solo = await greedyRuns(modelPath, ['hello world'], 20);
    expect(after.tokens).toEqual(solo[0]?.tokens);
    expect(done.tokens).toEqual(solo[0]?.tokens.slice(0, done.tokens.length));
  });

  it('streams each token as soon as no text of it is held back, not one token late', async () => {
    const controller = new AbortController();
    const done = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 50, signal: controller.signal }, () => controller.abort());
    expect(done.finishReason).toBe('cancelled');
    expect(done.tokens).toHaveLength(1);
  });

  it('samples reproducibly with a seed and temperature', async () => {
    const request = { prompt: { text: 'the ferry' }, maxTokens: 24, temperature: 1.2 } as const;
    const a = await generateAll(engine, { ...request, seed: 7 });
    const b = await generateAll(engine, { ...request, seed: 7 });
    const c = await generateAll(engine, { ...request, seed: 8 });
    const greedy = await generateAll(engine, { prompt: request.prompt, maxTokens: 24 });
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
    expect(a.tokens).not.toEqual(greedy.tokens);
  });

  it('constrains output with a JSON schema and a GBNF grammar', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, pick: { enum: ['red', 'green'] } }, required: ['ok', 'pick'] };
    const json = await generateAll(engine, { prompt: { text: 'Once upon a time' }, maxTokens: 64, grammar: { kind: 'json-schema', schema } });
    expect(json.finishReason).toBe('stop');
    const value = JSON.parse(json.text) as { ok: unknown; pick: unknown };
    expect(typeof value.ok).toBe('boolean');
    expect(['red', 'green']).toContain(value.pick);
    const gbnf = await generateAll(engine, { prompt: { text: 'hello' }, maxTokens: 32, grammar: { kind: 'gbnf', text: 'root ::= ("yes" | "no") "."' } });
    expect(['yes.', 'no.']).toContain(gbnf.text.trim());
    expect((await refusal(() => generateAll(engine, { prompt: { text: 'x' }, maxTokens: 4, grammar: { kind: 'gbnf', text: 'root ::= (' } }))).code).toBe('llm/bad-grammar');
  });

  it('reuses a slot\'s cached prefix on the next turn, with the same result as a cold run', async () => {
    const first = await generateAll(engine, { prompt: { text: 'hello world, the ferry' }, maxTokens: 12, slot: 'turns' });
    const turn1 = await preparePrompt(engine, { text: 'hello world, the ferry' });
    const next = [...turn1, ...first.tokens, ...(await engine.tokenize(' and the agent'))];
    const warm = await generateAll(engine, { prompt: { tokens: next }, maxTokens: 12, slot: 'turns' });
    expect(warm.stats.cachedTokens).toBe(turn1.length + first.tokens.length - 1);
    const cold = await generateAll(engine, { prompt: { tokens: next }, maxTokens: 12, slot: 'cold' });
    // Another sequence may share a short prefix (BOS, "hello"): far less than the slot that ran turn 1.
    expect(cold.stats.cachedTokens).toBeLessThan(turn1.length);
    expect(warm.tokens).toEqual(cold.tokens);
    await engine.releaseSlot('turns');
    await engine.releaseSlot('cold');
  });

  it('refuses bad requests with typed errors', async () => {
    const codes = async (request: GenerateRequest) => (await refusal(() => generateAll(engine, request))).code;
    expect(await codes({ prompt: { text: 'x' }, maxTokens: 0 })).toBe('llm/bad-request');
    expect(await codes({ prompt: { text: 'x' }, maxTokens: 4, temperature: -1 })).toBe('llm/bad-request');
    expect(await codes({ prompt: { text: 'x' }, maxTokens: 4, stop: [''] })).toBe('llm/bad-request');
    expect(await codes({ prompt: { tokens: [] }, maxTokens: 4 })).toBe('llm/bad-request');
    expect(await codes({ prompt: { tokens: [1, vocab.tokens.length] }, maxTokens: 4 })).toBe('llm/bad-token');
    expect(await codes({ prompt: { tokens: [1, -3] }, maxTokens: 4 })).toBe('llm/bad-token');
    expect(await codes({ prompt: { tokens: new Array<number>(engine.info.contextSize).fill(300) }, maxTokens: 4 })).toBe('llm/context-overflow');
    expect((await refusal(() => engine.detokenize([99999]))).code).toBe('llm/bad-token');
    expect((await refusal(() => engine.saveKv('never-used'))).code).toBe('llm/unknown-slot');
  });

  it('stops at the end of its context instead of shifting it', async () => {
    const long = new Array<number>(engine.info.contextSize - 10).fill(300);
    long[0] = 1;
    const done = await generateAll(engine, { prompt: { tokens: long }, maxTokens: 100 });
    expect(done.finishReason).toBe('length');
    expect(done.tokens).toHaveLength(10);
  });

  it('round-trips a slot\'s KV state and refuses one from another model', async () => {
    const prompt = await preparePrompt(engine, { text: 'Once upon a time' });
    const full = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 30 });
    const part = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 10, slot: 'kv' });
    const state = await engine.saveKv('kv');
    // Named by the llama.cpp it runs, which the CPU engine's WebAssembly build shares (test/browser/cpu-kv.test.ts).
    expect(engine.info.kvFormat).toMatch(/^llama\.cpp@[0-9a-f]{12}$/);
    expect(state).toMatchObject({ engine: engine.info.kvFormat, model: engine.info.model, tokens: [...prompt, ...part.tokens.slice(0, -1)] });
    await engine.loadKv('kv2', state);
    const rest = await generateAll(engine, { prompt: { tokens: [...prompt, ...part.tokens] }, maxTokens: 20, slot: 'kv2' });
    expect(rest.stats.cachedTokens).toBe(state.tokens.length);
    expect([...part.tokens, ...rest.tokens]).toEqual(full.tokens);
    expect((await refusal(() => engine.loadKv('kv3', { ...state, model: 'f'.repeat(64) }))).code).toBe('llm/kv-mismatch');
    expect((await refusal(() => engine.loadKv('kv3', { ...state, tokens: [...state.tokens, 300] }))).code).toBe('llm/kv-mismatch');
    expect((await refusal(() => engine.loadKv('kv3', { ...state, engine: 'node-llama-cpp' }))).code).toBe('llm/kv-mismatch');
    // llama.cpp reads a state cut short past its end and aborts the process: every state is parsed whole first, and one
    // a byte short or long, cut anywhere, is refused before llama.cpp sees it.
    const lengths = [state.bytes.length - 1, state.bytes.length + 1, ...Array.from({ length: 40 }, (_, i) => Math.floor((state.bytes.length * i) / 40))];
    for (const length of lengths) {
      const bytes = new Uint8Array(length);
      bytes.set(state.bytes.subarray(0, Math.min(length, state.bytes.length)));
      expect((await refusal(() => engine.loadKv('kv3', { ...state, bytes }))).code, `${length} of ${state.bytes.length} bytes`).toBe('llm/kv-format');
    }
    const after = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 30, slot: 'kv3' });
    expect(after.tokens).toEqual(full.tokens);
    for (const slot of ['kv', 'kv2', 'kv3']) await engine.releaseSlot(slot);
  });

  it('keeps printable tokens out of special ids (sanity of the generated model)', async () => {
    const done = await generateAll(engine, { prompt: { text: 'story' }, maxTokens: 32 });
    expect(done.tokens.every((t) => vocab.types[t] === TokenType.NORMAL)).toBe(true);
  });
});
