/**
 * The GGUF-on-the-GPU engine (wllama 3, llama.cpp's WebGPU backend). This machine's only adapter is SwiftShader
 * without shader-f16, which that backend needs: the engine must refuse it in a way the CPU engine takes over
 * from. Everything else is the same code on either device, so it is checked here with the engine allowed to run
 * on the CPU: the prompt handed over as text reaches llama.cpp as the session's exact ids, and greedy ids equal
 * node-llama-cpp's.
 */
import { commands } from 'vitest/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canFallBack, openWithFallback, type EngineSwitch } from '../../src/core/llm/fallback-engine.ts';
import { generateAll, type Engine, type GenerateEvent } from '../../src/core/llm/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { createCpuEngine } from '../../src/browser/llm/cpu-open.ts';
import { createWllamaGpuEngine, type WllamaGpuEngine } from '../../src/browser/llm/wllama-gpu-engine.ts';
import { GREEDY_PROMPTS, TEST_MODELS } from '../support/prompts.ts';

const MAX_TOKENS = 40;

async function events(engine: WllamaGpuEngine, request: Parameters<WllamaGpuEngine['generate']>[0]): Promise<{ tokens: GenerateEvent[]; done: Extract<GenerateEvent, { type: 'done' }> }> {
  const all: GenerateEvent[] = [];
  for await (const event of engine.generate(request)) all.push(event);
  const done = all.at(-1);
  if (done?.type !== 'done') throw new Error('no done event');
  return { tokens: all.slice(0, -1), done };
}

it('refuses an adapter without shader-f16, so the CPU engine takes over', async () => {
  const adapter = await (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ features: ReadonlySet<string> } | null> } }).gpu?.requestAdapter();
  expect(adapter, 'the browser tests run Chromium with --enable-unsafe-webgpu').toBeTruthy();
  expect(adapter!.features.has('shader-f16')).toBe(false);
  const failure = await createWllamaGpuEngine({ model: new Blob([generateTinyModel()]) }).then(
    () => undefined,
    (err: unknown) => err,
  );
  // llama.cpp said where every layer went (2 blocks + output): none went to a GPU.
  expect(failure).toMatchObject({ code: 'llm/webgpu-unsupported', details: { fallback: 'wllama', layers: 3 } });
  expect(canFallBack(failure)).toBe(true);
});

it('refuses a truncated model file before llama.cpp sees it', async () => {
  const bytes = generateTinyModel();
  await expect(createWllamaGpuEngine({ model: new Blob([bytes.subarray(0, bytes.length - 100)]), allowCpu: true })).rejects.toMatchObject({ code: 'gguf/truncated' });
});

describe.each(TEST_MODELS)('the wllama 3 engine on model %o (allowed on the CPU here)', (params) => {
  let engine: WllamaGpuEngine;
  const model = new Blob([generateTinyModel(params)]);

  beforeAll(async () => {
    engine = await createWllamaGpuEngine({ model, contextSize: 512, allowCpu: true });
  });
  afterAll(() => engine?.dispose());

  it('says where it runs and speaks the CPU engine’s token ids', async () => {
    expect(engine.info).toMatchObject({ id: 'wllama-webgpu', kind: 'wasm-cpu', contextSize: 512, grammar: true, kvState: false, addBos: true, bosToken: '<s>' });
    expect(engine.info.device).toBe('CPU (WebAssembly), 1 thread: llama.cpp put 0 of 3 layers on a GPU');
    const cpu = await createCpuEngine({ model, contextSize: 64 });
    try {
      expect(engine.info.tokenizerId).toBe(cpu.info.tokenizerId);
      expect(engine.info.model).toBe(cpu.info.model);
      expect(engine.info.chatTemplate).toBe(cpu.info.chatTemplate);
      expect(engine.info.kvFormat).toBeUndefined();
      for (const prompt of GREEDY_PROMPTS) expect(await engine.tokenize(prompt, { special: true }), prompt).toEqual(await cpu.tokenize(prompt, { special: true }));
    } finally {
      await cpu.dispose();
    }
  });

  it('generates greedily the same ids as node-llama-cpp from text, and from the exact ids of a cut reply', async () => {
    const native = await commands.nativeGreedy(params, GREEDY_PROMPTS, MAX_TOKENS);
    for (const [i, prompt] of GREEDY_PROMPTS.entries()) {
      const expected = native[i]!;
      const { tokens, done } = await events(engine, { prompt: { text: prompt }, maxTokens: MAX_TOKENS });
      expect(done.tokens, prompt).toEqual(expected.tokens);
      expect(tokens.map((e) => (e.type === 'token' ? e.id : -1))).toEqual(expected.tokens);
      expect(tokens.map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(done.text);
      expect(done.text.trimStart()).toBe(expected.text.trimStart());
      expect(done).toMatchObject({ finishReason: 'length', stats: { promptTokens: expected.promptTokens.length, completionTokens: MAX_TOKENS } });

      // A reply cut after 15 tokens goes on from prompt + those ids, as if never cut.
      const resumed = await generateAll(engine, { prompt: { tokens: [...expected.promptTokens, ...expected.tokens.slice(0, 15)] }, maxTokens: MAX_TOKENS - 15 });
      expect(resumed.tokens, prompt).toEqual(expected.tokens.slice(15));
    }
  });

  it('ends at a stop sequence, stops when cancelled, and keeps to a grammar', async () => {
    const whole = await generateAll(engine, { prompt: { text: GREEDY_PROMPTS[0]! }, maxTokens: MAX_TOKENS });
    const stopAt = whole.text.trimStart().split(' ').slice(3, 5).join(' ');
    const stopped = await events(engine, { prompt: { text: GREEDY_PROMPTS[0]! }, maxTokens: MAX_TOKENS, stop: [stopAt] });
    expect(stopped.done.finishReason).toBe('stop');
    expect(stopped.done.text).toBe(whole.text.slice(0, whole.text.indexOf(stopAt)));
    // The stop sequence's ids are part of the reply (a transcript resumes exactly), its text is not.
    expect(stopped.done.tokens).toEqual(whole.tokens.slice(0, stopped.done.tokens.length));
    expect(stopped.tokens.map((e) => (e.type === 'token' ? e.text : '')).join('')).toBe(stopped.done.text);

    const controller = new AbortController();
    let seen = 0;
    let cancelled: GenerateEvent | undefined;
    for await (const event of engine.generate({ prompt: { text: GREEDY_PROMPTS[1]! }, maxTokens: 400, signal: controller.signal })) {
      if (event.type === 'token' && ++seen === 5) controller.abort();
      cancelled = event;
    }
    expect(cancelled).toMatchObject({ type: 'done', finishReason: 'cancelled' });
    expect((cancelled as Extract<GenerateEvent, { type: 'done' }>).tokens.length).toBeLessThan(10);

    const yesNo = await generateAll(engine, { prompt: { text: 'Answer: ' }, maxTokens: 8, grammar: { kind: 'gbnf', text: 'root ::= "yes" | "no"' } });
    expect(['yes', 'no']).toContain(yesNo.text);
    const json = await generateAll(engine, { prompt: { text: 'JSON: ' }, maxTokens: 24, grammar: { kind: 'json-schema', schema: { type: 'boolean' } } });
    expect(typeof JSON.parse(json.text)).toBe('boolean');
  });

  it('renders chat messages with the model’s own template', async () => {
    const messages = [{ role: 'user' as const, content: 'What is a token?' }];
    const fromMessages = await generateAll(engine, { prompt: { messages }, maxTokens: 12 });
    const [expected] = await commands.nativeGreedy(params, [GREEDY_PROMPTS[2]!], 12);
    expect(fromMessages.tokens).toEqual(expected!.tokens);
  });
});

it('disposing the engine mid-reply ends the reply as cancelled, at once', async () => {
  const gpu = await createWllamaGpuEngine({ model: new Blob([generateTinyModel()]), contextSize: 512, allowCpu: true });
  let seen = 0;
  let disposed: Promise<void> | undefined;
  const events: GenerateEvent[] = [];
  for await (const event of gpu.generate({ prompt: { text: GREEDY_PROMPTS[0]! }, maxTokens: 400 })) {
    events.push(event);
    if (event.type === 'token' && ++seen === 5) disposed = gpu.dispose();
  }
  await disposed;
  expect(events.at(-1)).toMatchObject({ type: 'done', finishReason: 'cancelled' });
  expect(seen).toBeLessThan(20);
  expect(() => gpu.generate({ prompt: { text: 'again' }, maxTokens: 4 })).toThrow(expect.objectContaining({ code: 'llm/disposed' }) as Error);
});

it('a GPU engine whose llama.cpp dies mid-reply hands over: the CPU engine continues the reply token-identically', async () => {
  const params = TEST_MODELS[0];
  const model = new Blob([generateTinyModel(params)]);
  const [expected] = await commands.nativeGreedy(params, [GREEDY_PROMPTS[0]!], MAX_TOKENS);
  const gpu = await createWllamaGpuEngine({ model, contextSize: 512, allowCpu: true });
  // After the 10th token llama.cpp aborts, as GGML_ABORT does when the WebGPU device is lost: the wasm worker's abort
  // signal, delivered to wllama's own handler, which fails every call in flight.
  const proxy = (gpu as unknown as { wllama: { proxy: { onRecvMsg(e: { data: unknown }): void } } }).wllama.proxy;
  const abort = () => proxy.onRecvMsg({ data: { verb: 'signal.abort', args: ['abort', 'ggml_webgpu: Device lost!', '', null] } });
  const switches: EngineSwitch[] = [];
  let cpu: Engine | undefined;
  const engine = await openWithFallback(async () => gpu, { open: async () => (cpu = await createCpuEngine({ model, contextSize: 512 })), onSwitch: (s) => switches.push(s) });
  try {
    let seen = 0;
    const done = await generateAll(engine, { prompt: { text: GREEDY_PROMPTS[0]! }, maxTokens: MAX_TOKENS }, () => {
      if (++seen === 10) abort();
    });
    expect(switches).toMatchObject([{ from: 'wllama-webgpu', to: 'wllama', code: 'llm/webgpu-lost', during: 'generation' }]);
    expect(done.tokens).toEqual(expected!.tokens);
    expect(done.text.trimStart()).toBe(expected!.text.trimStart());
    expect(engine.info.id).toBe('wllama');
  } finally {
    await cpu?.dispose();
  }
});
