/**
 * The engine fallback (src/core/llm/fallback-engine.ts) on real engines (node-llama-cpp, tiny generated model). A
 * GPU device lost mid-reply cannot happen on this machine, so the primary is a real engine that fails the way
 * web-llm's adapter reports a lost device (llm/webgpu-lost, details.fallback) after some tokens; the fallback is
 * another real engine. The reply must go on where it stopped: token-identical to an uninterrupted run when both
 * share a tokenizer, continued from the text when they do not; other failures stay failures.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FerryError } from '../../../src/core/errors.ts';
import { generateAll } from '../../../src/core/llm/collect.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { openWithFallback, type EngineSwitch } from '../../../src/core/llm/fallback-engine.ts';
import { renderMessages, tokenizePrompt } from '../../../src/core/llm/prompt.ts';
import { failing, gpuLost as lost } from '../../support/failing-engine.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

describe('engine fallback', () => {
  let models: Awaited<ReturnType<typeof modelDir>>;
  let gpu: Engine;
  let cpu: Engine;
  const messages = [{ role: 'user' as const, content: 'Tell me about the harbour at dawn' }];

  beforeAll(async () => {
    models = await modelDir();
    const file = await models.model('tiny.gguf', { seed: 5 });
    [gpu, cpu] = await Promise.all([cpuEngine(file), cpuEngine(file)]);
  });
  afterAll(async () => {
    await Promise.all([gpu?.dispose(), cpu?.dispose()]);
    await models?.cleanup();
  });

  it('a device lost mid-reply: the fallback goes on token-identically, one stream, and says so', async () => {
    const request = { prompt: { messages }, maxTokens: 40 };
    const whole = await generateAll(cpu, request);
    const switches: EngineSwitch[] = [];
    let opened = 0;
    const engine = await openWithFallback(async () => failing(gpu, 9, lost, { id: 'web-llm' }), {
      open: async () => (opened++, cpu),
      onSwitch: (s) => switches.push(s),
    });
    expect(engine.info.id).toBe('web-llm');
    let streamed = '';
    const done = await generateAll(engine, request, (t) => (streamed += t.text));
    expect(done.tokens).toEqual(whole.tokens);
    expect(done.text).toBe(whole.text);
    expect(streamed).toBe(done.text);
    expect(done.stats.completionTokens).toBe(40);
    expect(opened).toBe(1);
    expect(switches).toEqual([
      { from: 'web-llm', to: 'node-llama-cpp', code: 'llm/webgpu-lost', during: 'generation', ids: 'carried', message: expect.stringMatching(/^The GPU device was lost .*\. The reply goes on on node-llama-cpp \(CPU.*\) instead\.$/) },
    ]);
    // From now on it is the fallback, for every call.
    expect(engine.info).toBe(cpu.info);
    expect((await generateAll(engine, request)).tokens).toEqual(whole.tokens);
    expect(opened).toBe(1);
  });

  it('with another tokenizer the reply continues from its text, in the fallback’s ids', async () => {
    const request = { prompt: { messages }, maxTokens: 30 };
    let streamed = '';
    const switches: EngineSwitch[] = [];
    const engine = await openWithFallback(async () => failing(gpu, 6, lost, { id: 'web-llm', tokenizerId: 'web-llm:some-gpu-model' }), { open: async () => cpu, onSwitch: (s) => switches.push(s) });
    const done = await generateAll(engine, request, (t) => (streamed += t.text));
    expect(streamed).toBe(done.text);
    // The first six tokens came from the primary; the rest is what the fallback makes of the prompt + that text.
    const first = await generateAll(cpu, { ...request, maxTokens: 6 });
    expect(done.text.startsWith(first.text)).toBe(true);
    const before = await cpu.tokenize(first.text);
    const rest = await generateAll(cpu, { prompt: { tokens: await tokenizePrompt(cpu, renderMessages(cpu.info, messages) + first.text) }, maxTokens: 30 - 6 });
    expect(done.text).toBe(first.text + rest.text);
    expect(done.tokens).toEqual([...before, ...rest.tokens]);
    expect(switches).toMatchObject([{ during: 'generation', ids: 'retokenized' }]);
    expect(switches[0]!.message).toMatch(/The reply goes on from its text, re-tokenized \(the two engines’ tokenizers differ\) on node-llama-cpp/);
  });

  it('a failure at the very end of the budget ends the reply as it is', async () => {
    const request = { prompt: { text: 'Once upon a time' }, maxTokens: 12 };
    const whole = await generateAll(cpu, request);
    // Fails where the done event would come: every token is out, nothing is left to continue.
    let opened = 0;
    const engine = await openWithFallback(async () => failing(gpu, 12, lost), { open: async () => (opened++, cpu) });
    const done = await generateAll(engine, request);
    expect(done).toMatchObject({ finishReason: 'length', text: whole.text, tokens: whole.tokens });
    expect(opened).toBe(1);
  });

  it('does not hide other failures, and says when the fallback cannot open either', async () => {
    const broken = () => new FerryError('llm/engine-failed', 'The model produced NaNs.');
    let opened = 0;
    const engine = await openWithFallback(async () => failing(gpu, 3, broken), { open: async () => (opened++, cpu) });
    await expect(generateAll(engine, { prompt: { text: 'hello' }, maxTokens: 8 })).rejects.toMatchObject({ code: 'llm/engine-failed' });
    expect(opened).toBe(0);

    const noCpu = await openWithFallback(async () => failing(gpu, 3, lost), {
      open: async () => {
        throw new FerryError('model/missing', 'The model file is no longer stored on this device.');
      },
    });
    const err = await generateAll(noCpu, { prompt: { text: 'hello' }, maxTokens: 8 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'model/missing', details: { first: 'llm/webgpu-lost' } });
    expect((err as Error).message).toMatch(/GPU device was lost.*could not be opened either: The model file is no longer stored/);
  });

  it('on load: a failure the CPU can take over from opens the fallback; others are thrown', async () => {
    const switches: EngineSwitch[] = [];
    const unreachable = new FerryError('llm/model-unreachable', 'web-llm could not download the model x: Failed to fetch.', { details: { fallback: 'wllama', engine: 'web-llm' } });
    const engine = await openWithFallback(
      async () => {
        throw unreachable;
      },
      { open: async () => cpu, onSwitch: (s) => switches.push(s) },
    );
    expect(engine).toBe(cpu);
    expect(switches).toEqual([{ from: 'web-llm', to: 'node-llama-cpp', code: 'llm/model-unreachable', during: 'load', message: expect.stringMatching(/^web-llm could not download the model x: Failed to fetch\. Running on node-llama-cpp .* instead\.$/) }]);
    const unknown = new FerryError('llm/unknown-model', 'web-llm has no model "x" in its catalog.');
    await expect(
      openWithFallback(
        async () => {
          throw unknown;
        },
        { open: async () => cpu },
      ),
    ).rejects.toBe(unknown);
  });
});
