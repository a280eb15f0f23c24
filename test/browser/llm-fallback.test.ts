/**
 * When web-llm fails in a way the CPU can take over from, the engine opener loads the wllama model it was given and
 * says why. Here web-llm really fails (its model cannot be fetched); the
 * fallback is a real wllama engine on a generated model, which then generates. A device lost mid-reply cannot be
 * had here, so that failure is injected into a real wllama engine (test/support/failing-engine.ts): the reply goes
 * on, token-identically, and the engine reports the one that now runs.
 */
import { describe, expect, it } from 'vitest';
import { generateAll } from '../../src/core/llm/index.ts';
import { openWithFallback, type EngineSwitch } from '../../src/core/llm/fallback-engine.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { cpuShare } from '../../src/core/llm/cpu-share.ts';
import { cpuThreads, openBrowserEngine, type WllamaSpec } from '../../src/browser/llm/open-engine.ts';
import { failing, gpuLost } from '../support/failing-engine.ts';

const unreachable = 'http://127.0.0.1:9/ferry-missing-model';
const missingModel = { model: unreachable, model_id: 'ferry-missing', model_lib: `${unreachable}/lib.wasm`, low_resource_required: true };
const model = new Blob([generateTinyModel({ seed: 3 })]);

describe('web-llm → wllama fallback', () => {
  it('loads the wllama fallback when web-llm cannot load, reports why, and generates', async () => {
    const switches: EngineSwitch[] = [];
    const engine = await openBrowserEngine(
      { kind: 'web-llm', modelId: 'ferry-missing', modelList: [missingModel], fallback: { kind: 'wllama', model, modelId: 'tiny-fallback' } },
      { onSwitch: (change) => switches.push(change) },
    );
    try {
      expect(engine.info).toMatchObject({ id: 'wllama', kind: 'wasm-cpu', model: 'tiny-fallback' });
      expect(switches).toHaveLength(1);
      // The app's web-llm engine reads the model's chat template first: that fetch is what fails here.
      expect(switches[0]).toMatchObject({ code: 'llm/no-chat-template', during: 'load' });
      expect(switches[0]!.message).toMatch(/tokenizer_config\.json could not be fetched.*wllama/);
      const done = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 8 });
      expect(done.tokens).toHaveLength(8);
    } finally {
      await engine.dispose();
    }
  });

  it('does not hide failures the CPU cannot fix: an unknown web-llm model stays an error', async () => {
    await expect(openBrowserEngine({ kind: 'web-llm', modelId: 'no-such-model', fallback: { kind: 'wllama', model } })).rejects.toMatchObject({ code: 'llm/unknown-model' });
  });

  it('a GPU lost mid-reply: the reply goes on on wllama, token-identically, and the engine says which runs', async () => {
    const cpu: WllamaSpec = { kind: 'wllama', model, modelId: 'cpu-fallback', threads: 1 };
    const request = { prompt: { text: 'the harbour at dawn' }, maxTokens: 24 };
    const plain = await openBrowserEngine(cpu);
    const whole = await generateAll(plain, request).finally(() => plain.dispose());
    const switches: EngineSwitch[] = [];
    const engine = await openWithFallback(async () => failing(await openBrowserEngine(cpu), 9, gpuLost, { id: 'web-llm', kind: 'webgpu', model: 'gpu-model' }), {
      open: () => openBrowserEngine(cpu),
      onSwitch: (change) => switches.push(change),
    });
    try {
      expect(engine.info).toMatchObject({ id: 'web-llm', kind: 'webgpu', model: 'gpu-model' });
      let streamed = '';
      const done = await generateAll(engine, request, (t) => (streamed += t.text));
      expect(done.tokens).toEqual(whole.tokens);
      expect(streamed).toBe(whole.text);
      expect(engine.info).toMatchObject({ id: 'wllama', kind: 'wasm-cpu', model: 'cpu-fallback' });
      expect(switches).toMatchObject([{ from: 'web-llm', to: 'wllama', code: 'llm/webgpu-lost', during: 'generation', ids: 'carried' }]);
      expect(switches[0]!.message).toMatch(/^The GPU device was lost .* The reply goes on on wllama \(CPU \(WebAssembly\), 1 thread\) instead\.$/);
      // The next reply runs on the fallback from the start.
      expect((await generateAll(engine, request)).tokens).toEqual(whole.tokens);
    } finally {
      await engine.dispose();
    }
  });
});

describe('the CPU engine’s threads and share', () => {
  it('uses every core but one (at most 8) under cross-origin isolation, as far as the share allows', () => {
    expect(cpuThreads(1, { cores: 8, isolated: true })).toBe(7);
    expect(cpuThreads(1, { cores: 16, isolated: true })).toBe(8);
    expect(cpuThreads(0.5, { cores: 8, isolated: true })).toBe(4);
    expect(cpuThreads(0.05, { cores: 8, isolated: true })).toBe(1);
    expect(cpuThreads(1, { cores: 2, isolated: true })).toBe(1);
    expect(cpuThreads(1, { cores: 8, isolated: false })).toBe(1);
  });

  it('opens wllama on the threads asked for, and says so', async () => {
    // The browser tests run cross-origin isolated (vitest.config.ts), so threads are possible.
    expect(globalThis.crossOriginIsolated).toBe(true);
    const engine = await openBrowserEngine({ kind: 'wllama', model, threads: 2 }, { share: cpuShare() });
    try {
      expect(engine.info.device).toBe('CPU (WebAssembly), 2 threads');
      expect((await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 8 })).tokens).toHaveLength(8);
    } finally {
      await engine.dispose();
    }
  });
});
