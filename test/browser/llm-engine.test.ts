/**
 * The CPU engine (llama.cpp in WebAssembly) as the app opens it (src/browser/llm/open-engine.ts). Greedy ids equal
 * node-llama-cpp's on the same generated file; a generation interrupted and resumed in a fresh engine by
 * prefilling the exact ids continues identically; cancellation, stop sequences, seeds and bad files behave.
 */
import { commands } from 'vitest/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../src/core/errors.ts';
import { generateAll, type Engine, type GenerateEvent, type Grammar } from '../../src/core/llm/index.ts';
import { jsonSchemaGrammar } from '../../src/core/llm/json-grammar.ts';
import { parseToolCalls, type ToolSpec } from '../../src/core/llm/tool-calls.ts';
import { toolCallGrammar } from '../../src/core/llm/tool-grammar.ts';
import { checkJsonSchema } from '../../src/core/runtime/json-schema.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { openBrowserEngine } from '../../src/browser/llm/open-engine.ts';
import { GREEDY_PROMPTS, TEST_MODELS } from '../support/prompts.ts';

const MAX_TOKENS = 48;

async function collect(engine: Engine, request: Parameters<Engine['generate']>[0]): Promise<GenerateEvent[]> {
  const events: GenerateEvent[] = [];
  for await (const event of engine.generate(request)) events.push(event);
  return events;
}

describe.each(TEST_MODELS)('the CPU engine, model %o', (params) => {
  let engine: Engine;
  const model = new Blob([generateTinyModel(params)]);

  beforeAll(async () => {
    engine = await openBrowserEngine({ kind: 'wllama', model, contextSize: 512 });
  });
  afterAll(() => engine.dispose());

  it('describes itself and tokenizes like node-llama-cpp', async () => {
    expect(engine.info).toMatchObject({ id: 'wllama', kind: 'wasm-cpu', contextSize: 512, kvState: true, bosToken: '<s>', addBos: true });
    expect(engine.info.kvFormat).toMatch(/^llama\.cpp@[0-9a-f]{12}$/);
    expect(engine.info.model).toMatch(/^[0-9a-f]{64}$/);
    expect(engine.info.tokenizerId).toMatch(/^tok1-[0-9a-f]{64}$/);
    const native = await commands.nativeGreedy(params, GREEDY_PROMPTS, 1);
    for (const [i, prompt] of GREEDY_PROMPTS.entries()) {
      expect([1, ...(await engine.tokenize(prompt, { special: true }))], prompt).toEqual(native[i]!.promptTokens);
    }
    // Without `special`, special-token text is plain text.
    expect(await engine.tokenize('<|im_start|>')).not.toEqual(await engine.tokenize('<|im_start|>', { special: true }));
  });

  it('generates greedily the same token ids as node-llama-cpp, streaming them', async () => {
    const native = await commands.nativeGreedy(params, GREEDY_PROMPTS, MAX_TOKENS);
    for (const [i, prompt] of GREEDY_PROMPTS.entries()) {
      const events = await collect(engine, { prompt: { text: prompt }, maxTokens: MAX_TOKENS });
      const done = events.at(-1)!;
      if (done.type !== 'done') throw new Error('no done event');
      expect(done.tokens, prompt).toEqual(native[i]!.tokens);
      expect(events.slice(0, -1).map((e) => (e.type === 'token' ? e.id : -1)), prompt).toEqual(native[i]!.tokens);
      expect(events.slice(0, -1).map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(done.text);
      expect(done.text.trimStart()).toBe(native[i]!.text.trimStart());
      expect(done.finishReason).toBe('length');
      expect(done.stats).toMatchObject({ promptTokens: native[i]!.promptTokens.length, completionTokens: MAX_TOKENS });
      expect(done.stats.decodeTps).toBeGreaterThan(0);
      expect(done.stats.ttftMs).toBeGreaterThan(0);
    }
  });

  it('resumes a generation in a fresh engine from the exact ids, token-identically', async () => {
    const prompt = GREEDY_PROMPTS[2]!;
    const whole = await generateAll(engine, { prompt: { text: prompt }, maxTokens: MAX_TOKENS });
    const promptIds = [1, ...(await engine.tokenize(prompt, { special: true }))];
    const cut = 17;
    const resumed = await openBrowserEngine({ kind: 'wllama', model, contextSize: 512 });
    try {
      const rest = await generateAll(resumed, { prompt: { tokens: [...promptIds, ...whole.tokens.slice(0, cut)] }, maxTokens: MAX_TOKENS - cut });
      expect(rest.tokens).toEqual(whole.tokens.slice(cut));
      expect(rest.stats.cachedTokens).toBe(0);
    } finally {
      await resumed.dispose();
    }
    // The same engine reuses the KV of the common prefix and still continues identically.
    const again = await generateAll(engine, { prompt: { tokens: [...promptIds, ...whole.tokens.slice(0, cut + 5)] }, maxTokens: 10 });
    expect(again.tokens).toEqual(whole.tokens.slice(cut + 5, cut + 15));
    expect(again.stats.cachedTokens).toBeGreaterThan(0);
  });

  it('cancels at the next token and stays usable', async () => {
    const controller = new AbortController();
    const events: GenerateEvent[] = [];
    for await (const event of engine.generate({ prompt: { text: 'Once upon a time' }, maxTokens: 400, signal: controller.signal })) {
      events.push(event);
      if (events.length === 5) controller.abort();
    }
    const done = events.at(-1)!;
    expect(done.type === 'done' && done.finishReason).toBe('cancelled');
    expect(done.type === 'done' && done.tokens.length).toBeGreaterThanOrEqual(5);
    expect(done.type === 'done' && done.tokens.length).toBeLessThan(400);
    // A signal aborted before the call still ends with one 'cancelled' done event, and nothing generated.
    const early = await collect(engine, { prompt: { text: 'hello' }, maxTokens: 10, signal: AbortSignal.abort() });
    expect(early).toHaveLength(1);
    expect(early[0]).toMatchObject({ type: 'done', finishReason: 'cancelled', tokens: [] });
    const after = await generateAll(engine, { prompt: { text: 'hello world, the ferry' }, maxTokens: 8 });
    expect(after.tokens).toHaveLength(8);
  });

  it('sees a cancel sent by another task of the thread, mid-reply and mid-prompt', async () => {
    // llama.cpp's calls block the thread: a cancel that arrives as a message (as a worker's does) runs only when
    // the engine gives the thread a turn.
    const controller = new AbortController();
    const abortLater = () => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => controller.abort();
      channel.port2.postMessage(undefined);
    };
    const events: GenerateEvent[] = [];
    for await (const event of engine.generate({ prompt: { text: 'Once upon a time' }, maxTokens: 400, signal: controller.signal })) {
      if (events.push(event) === 1) abortLater();
    }
    const done = events.at(-1)!;
    expect(done.type === 'done' && done.finishReason).toBe('cancelled');
    expect(done.type === 'done' && done.tokens.length).toBeLessThan(400);

    // A prompt of three batches (512 ids each), cancelled as it starts: the first batch runs, the cancel is seen
    // before the second.
    const wide = await openBrowserEngine({ kind: 'wllama', model, contextSize: 1536 });
    try {
      const long = Array.from({ length: 1200 }, (_, i) => 3 + (i % 200));
      const second = new AbortController();
      const cut = wide.generate({ prompt: { tokens: long }, maxTokens: 4, signal: second.signal });
      const channel = new MessageChannel();
      channel.port1.onmessage = () => second.abort();
      channel.port2.postMessage(undefined);
      const cutEvents: GenerateEvent[] = [];
      for await (const event of cut) cutEvents.push(event);
      expect(cutEvents).toMatchObject([{ type: 'done', finishReason: 'cancelled', tokens: [] }]);
      // Nothing of the cut prompt stays cached: the same prompt again is prefilled whole.
      const again = await generateAll(wide, { prompt: { tokens: long }, maxTokens: 2 });
      expect(again.tokens).toHaveLength(2);
      expect(again.stats.cachedTokens).toBe(0);
    } finally {
      await wide.dispose();
    }
  });

  it('ends at a stop sequence, keeping its ids and cutting its text', async () => {
    const whole = await generateAll(engine, { prompt: { text: 'Once upon a time' }, maxTokens: MAX_TOKENS });
    const stop = whole.text.slice(20, 24);
    const events = await collect(engine, { prompt: { text: 'Once upon a time' }, maxTokens: MAX_TOKENS, stop: [stop] });
    const done = events.at(-1)!;
    if (done.type !== 'done') throw new Error('no done event');
    expect(done.finishReason).toBe('stop');
    expect(done.text).toBe(whole.text.slice(0, whole.text.indexOf(stop)));
    expect(events.slice(0, -1).map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(done.text);
    expect(whole.tokens.slice(0, done.tokens.length)).toEqual(done.tokens);
    expect(await engine.detokenize(done.tokens)).toContain(stop);
  });

  it('streams each token as soon as no text of it is held back, with stop sequences too', async () => {
    const controller = new AbortController();
    const done = await generateAll(engine, { prompt: { text: 'Once upon a time' }, maxTokens: 50, stop: ['Q!Q'], signal: controller.signal }, () => controller.abort());
    expect(done.finishReason).toBe('cancelled');
    expect(done.tokens).toHaveLength(1);
  });

  it('samples reproducibly with a seed at temperature > 0', async () => {
    const request = { prompt: { text: 'hello world' }, maxTokens: 24, temperature: 1.2, seed: 7 };
    const a = await generateAll(engine, request);
    const b = await generateAll(engine, request);
    expect(b.tokens).toEqual(a.tokens);
    const greedy = await generateAll(engine, { ...request, temperature: 0 });
    expect(a.tokens).not.toEqual(greedy.tokens);
  });

  it('follows grammars to the ids node-llama-cpp picks under them: JSON that validates, tool calls, free text', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' }, n: { type: 'integer', minimum: -50, maximum: 999 }, tag: { enum: ['ferry', 'ship', 'é🚢'] } }, required: ['ok', 'n'], additionalProperties: false };
    const add: ToolSpec = { name: 'add', description: 'adds', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string', maxLength: 6 } }, required: ['a', 'b'], additionalProperties: false } };
    const call = toolCallGrammar([add], { withOpenTag: true, budget: 160 }).gbnf;
    const words = 'root ::= word (" " word)*\nword ::= [a-z]+ | "é" | "🚢"';
    const cases: { grammar: Grammar; gbnf: string; maxTokens: number; check: (text: string) => void }[] = [
      { grammar: { kind: 'json-schema', schema }, gbnf: jsonSchemaGrammar(schema), maxTokens: MAX_TOKENS, check: (text) => expect(checkJsonSchema(schema, JSON.parse(text))).toEqual([]) },
      // A call's grammar fits the budget it is given: it ends before the tokens do.
      { grammar: { kind: 'gbnf', text: call }, gbnf: call, maxTokens: 160, check: (text) => expect(parseToolCalls(text, new Set(['add'])).calls.map((c) => checkJsonSchema(add.parameters, c.arguments))).toEqual([[]]) },
      // Unbounded, with multi-byte characters: every step is a pick, the reply runs to the budget.
      { grammar: { kind: 'gbnf', text: words }, gbnf: words, maxTokens: MAX_TOKENS, check: (text) => expect(text).toMatch(/^([a-z]+|é|🚢)( ([a-z]+|é|🚢))*$/u) },
    ];
    const prompts = [GREEDY_PROMPTS[0]!, GREEDY_PROMPTS[3]!];
    for (const { grammar, gbnf, maxTokens, check } of cases) {
      const native = await commands.nativeGreedy(params, prompts, maxTokens, gbnf);
      for (const [i, prompt] of prompts.entries()) {
        const events = await collect(engine, { prompt: { text: prompt }, maxTokens, grammar });
        const done = events.at(-1)!;
        if (done.type !== 'done') throw new Error('no done event');
        expect(done.tokens, `${gbnf.slice(0, 40)} / ${prompt}`).toEqual(native[i]!.tokens);
        expect(done.finishReason).toBe(native[i]!.tokens.length < maxTokens ? 'stop' : 'length');
        expect(events.slice(0, -1).map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(done.text);
        expect(done.text.trimStart()).toBe(native[i]!.text.trimStart());
        check(done.text);
      }
    }
  });

  it('refuses a bad grammar at the call, with where it is wrong, and one no token can follow', async () => {
    const err = await collect(engine, { prompt: { text: 'x' }, maxTokens: 4, grammar: { kind: 'gbnf', text: 'root ::= "a" | (' } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'FerryError', code: 'llm/bad-grammar', message: expect.stringMatching(/expected '\)' at the end of the grammar/) as string });
    // A grammar no token can follow (no character is outside 0…0x7FFFFFFF), after every token was tried.
    const stuck = await collect(engine, { prompt: { text: 'x' }, maxTokens: 4, grammar: { kind: 'gbnf', text: 'root ::= [^\\x00-\\U7FFFFFFF]' } }).catch((e: unknown) => e);
    expect(stuck).toMatchObject({ name: 'FerryError', code: 'llm/grammar-dead-end' });
    // The engine is still usable.
    expect((await generateAll(engine, { prompt: { text: 'x' }, maxTokens: 4, grammar: { kind: 'gbnf', text: 'root ::= "a"' } })).text).toBe('a');
  });

  it('refuses bad requests with typed errors', async () => {
    await expect(collect(engine, { prompt: { tokens: [1, 99999] }, maxTokens: 4 })).rejects.toMatchObject({ name: 'FerryError', code: 'llm/bad-token' });
    await expect(collect(engine, { prompt: { text: 'x' }, maxTokens: 0 })).rejects.toMatchObject({ code: 'llm/bad-request' });
    await expect(collect(engine, { prompt: { tokens: new Array(600).fill(300) }, maxTokens: 4 })).rejects.toMatchObject({ code: 'llm/context-full' });
  });

  it('stops where a grammar ends', async () => {
    const out = await generateAll(engine, { prompt: { text: 'x' }, maxTokens: 4, grammar: { kind: 'gbnf', text: 'root ::= "a"' } });
    expect(out.text).toBe('a');
    expect(out.finishReason).toBe('stop');
  });
});

describe('bad model files', () => {
  const open = (model: Blob) => openBrowserEngine({ kind: 'wllama', model });

  it('refuses a truncated file and a wrong magic with typed errors, then loads a good one', async () => {
    const bytes = generateTinyModel({ seed: 3 });
    const truncated = new Blob([bytes.slice(0, Math.floor(bytes.length / 2))]);
    await expect(open(truncated)).rejects.toMatchObject({ name: 'FerryError', code: expect.stringMatching(/^gguf\//) });
    const wrong = bytes.slice();
    wrong.set([0x47, 0x47, 0x4d, 0x4c], 0); // "GGML"
    await expect(open(new Blob([wrong]))).rejects.toMatchObject({ code: 'gguf/bad-magic' });
    const header = bytes.slice(0, 64);
    await expect(open(new Blob([header]))).rejects.toBeInstanceOf(FerryError);
    const engine = await open(new Blob([bytes]));
    expect((await generateAll(engine, { prompt: { text: 'hello' }, maxTokens: 4 })).tokens).toHaveLength(4);
    await engine.dispose();
  });

  it('turns what only llama.cpp refuses into a typed error with its reason', async () => {
    // Three layers said, two written: Ferry's header checks pass, llama.cpp finds a tensor missing.
    const bytes = generateTinyModel({ seed: 3 });
    const at = new TextDecoder('latin1').decode(bytes.slice(0, 4096)).indexOf('llama.block_count') + 'llama.block_count'.length + 4;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getUint32(at, true)).toBe(2);
    view.setUint32(at, 3, true);
    const refused = await open(new Blob([bytes])).catch((e: unknown) => e);
    expect(refused).toMatchObject({ name: 'FerryError', code: 'llm/load-failed', message: expect.stringMatching(/llama\.cpp could not load the model: .*blk\.2/) });
  });
});
