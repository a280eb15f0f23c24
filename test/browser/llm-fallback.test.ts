/**
 * When web-llm fails in a way the CPU can take over from, the LLM worker loads the wllama model it was given and
 * says why. Here web-llm really fails (in Chromium's SwiftShader WebGPU, its model cannot be fetched); the
 * fallback is a real wllama engine on a generated model, which then generates. A device lost mid-reply cannot be
 * had here, so a test worker injects that failure into a real wllama engine (test/support/gpu-loss.worker.ts): the
 * page's engine goes on, token-identically, and reports the engine that now runs.
 */
import { describe, expect, it } from 'vitest';
import { generateAll } from '../../src/core/llm/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { LlmClient } from '../../src/browser/llm/client.ts';
import type { LoadProgress } from '../../src/browser/llm/protocol.ts';

const unreachable = 'http://127.0.0.1:9/ferry-missing-model';
const missingModel = { model: unreachable, model_id: 'ferry-missing', model_lib: `${unreachable}/lib.wasm`, low_resource_required: true };

describe('web-llm → wllama fallback in the LLM worker', () => {
  it('loads the wllama fallback when web-llm cannot load, reports why, and generates', async () => {
    const client = new LlmClient();
    try {
      const progress: LoadProgress[] = [];
      const model = new Blob([generateTinyModel({ seed: 3 })]);
      const engine = await client.load(
        { kind: 'web-llm', modelId: 'ferry-missing', modelList: [missingModel], fallback: { kind: 'wllama', model, modelId: 'tiny-fallback' } },
        { onProgress: (p) => progress.push(p) },
      );
      expect(engine.info).toMatchObject({ id: 'wllama', kind: 'wasm-cpu', model: 'tiny-fallback' });
      const fallback = progress.find((p) => p.type === 'fallback');
      expect(fallback).toMatchObject({ type: 'fallback', from: 'web-llm' });
      expect((fallback as { code: string }).code).toMatch(/^llm\/(model-unreachable|webgpu-unsupported)$/);
      expect((fallback as { text: string }).text).toMatch(/wllama/);
      const done = await generateAll(engine, { prompt: { text: 'hello world' }, maxTokens: 8 });
      expect(done.tokens).toHaveLength(8);
    } finally {
      client.terminate();
    }
  });

  it('does not hide failures the CPU cannot fix: an unknown web-llm model stays an error', async () => {
    const client = new LlmClient();
    try {
      const model = new Blob([generateTinyModel({ seed: 3 })]);
      await expect(client.load({ kind: 'web-llm', modelId: 'no-such-model', fallback: { kind: 'wllama', model } })).rejects.toMatchObject({ code: 'llm/unknown-model' });
    } finally {
      client.terminate();
    }
  });

  it('a GPU lost mid-reply: the reply goes on on wllama, token-identically, and the page learns the engine changed', async () => {
    const model = new Blob([generateTinyModel({ seed: 3 })]);
    const plain = new LlmClient();
    const request = { prompt: { text: 'the harbour at dawn' }, maxTokens: 24 };
    const whole = await plain
      .load({ kind: 'wllama', model })
      .then((e) => generateAll(e, request))
      .finally(() => plain.terminate());
    const client = new LlmClient(new Worker(new URL('../support/gpu-loss.worker.ts', import.meta.url), { type: 'module' }));
    try {
      const progress: LoadProgress[] = [];
      const engine = await client.load({ kind: 'wllama', model, modelId: 'gpu-loss-9' }, { onProgress: (p) => progress.push(p) });
      expect(engine.info).toMatchObject({ id: 'web-llm', kind: 'webgpu', model: 'gpu-model' });
      let streamed = '';
      const done = await generateAll(engine, request, (t) => (streamed += t.text));
      expect(done.tokens).toEqual(whole.tokens);
      expect(streamed).toBe(whole.text);
      expect(engine.info).toMatchObject({ id: 'wllama', kind: 'wasm-cpu', model: 'cpu-fallback' });
      await expect.poll(() => progress.find((p) => p.type === 'fallback')).toMatchObject({ type: 'fallback', from: 'web-llm', code: 'llm/webgpu-lost' });
      expect((progress.find((p) => p.type === 'fallback') as { text: string }).text).toMatch(/^The GPU device was lost .* The reply goes on on wllama \(CPU \(WebAssembly\), 1 thread\) instead\.$/);
      // The next reply runs on the fallback from the start.
      expect((await generateAll(engine, request)).tokens).toEqual(whole.tokens);
    } finally {
      client.terminate();
    }
  });
});
