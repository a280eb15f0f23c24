/**
 * The device probe and chooser in Chromium with --enable-unsafe-webgpu (SwiftShader: a fallback adapter without
 * shader-f16), the web-llm catalog filter, and a web-llm engine for a model that cannot be fetched.
 */
import { describe, expect, it } from 'vitest';
import { chooseEngine, probeDevice } from '../../src/browser/llm/device-probe.ts';
import { prebuiltCatalog, screenCatalog } from '../../src/browser/llm/webllm-catalog.ts';
import { createWebLlmEngine } from '../../src/browser/llm/webllm-engine.ts';

describe('device probe and engine choice', () => {
  it('reports the SwiftShader adapter and filters the web-llm catalog by it', async () => {
    const probe = await probeDevice();
    if (!probe.webgpu.available) throw new Error(`expected the SwiftShader WebGPU adapter: ${probe.webgpu.reason}`);
    expect(probe.webgpu.isFallbackAdapter).toBe(true);
    expect(probe.webgpu.shaderF16).toBe(false);
    expect(probe.webgpu.limits.maxBufferSize).toBeGreaterThan(0);
    expect(probe.webgpu.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(probe.hardwareConcurrency).toBeGreaterThan(0);
    expect(probe.crossOriginIsolated).toBe(globalThis.crossOriginIsolated);

    const catalog = await prebuiltCatalog();
    const { fits, rejected } = screenCatalog(catalog, probe);
    expect(fits.length + rejected.length).toBe(catalog.length);
    // Declared (required_features) or implied by an f16 quantization (q4f16_1, q0f16), which many entries leave out.
    const needsF16 = catalog.filter((m) => m.required_features?.includes('shader-f16') || /-q\d+f16/.test(m.model_id));
    expect(needsF16.some((m) => !m.required_features)).toBe(true);
    // (Embedding and vision entries are refused earlier, as not text LLMs.)
    for (const m of needsF16) expect(rejected.find((r) => r.model_id === m.model_id)?.why).toMatch(/shader-f16|not a text LLM/);
    expect(fits.length).toBeGreaterThan(0);
    for (const m of fits) {
      expect(m.model_id).not.toMatch(/f16/);
      expect(m.required_features ?? []).not.toContain('shader-f16');
      expect(m.buffer_size_required_bytes ?? 0).toBeLessThanOrEqual(probe.webgpu.limits.maxStorageBufferBindingSize);
    }

    const choice = chooseEngine(probe, { catalog });
    expect(choice.engine).toBe('wllama');
    expect(choice.reason).toMatch(/software fallback|can run no web-llm model/);
    if (fits.length > 0) expect(chooseEngine(probe, { catalog, override: 'web-llm' }).engine).toBe('web-llm');
    expect(chooseEngine(probe, { catalog, override: 'wllama' }).reason).toContain('You chose llama.cpp on the CPU');
  });

  it('chooses wllama, and says why, on a device without WebGPU', async () => {
    const probe = await probeDevice({ navigator: { hardwareConcurrency: 4 } as Navigator, crossOriginIsolated: false });
    expect(probe.webgpu.available).toBe(false);
    const choice = chooseEngine(probe, { catalog: await prebuiltCatalog(), override: 'web-llm' });
    expect(choice).toMatchObject({ engine: 'wllama', webLlmModels: [], wllamaThreads: 1 });
    expect(choice.reason).toMatch(/You chose web-llm, but it needs WebGPU.*no WebGPU/);
  });

  it('fails with a typed, explained error when a web-llm model cannot be fetched', async () => {
    const unreachable = 'http://127.0.0.1:9/ferry-missing-model';
    const load = createWebLlmEngine({
      modelId: 'ferry-missing',
      modelList: [{ model: unreachable, model_id: 'ferry-missing', model_lib: `${unreachable}/lib.wasm`, low_resource_required: true }],
    });
    const error = await load.catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'FerryError' });
    const { code, message } = error as { code: string; message: string };
    expect(code).toMatch(/^llm\/(model-unreachable|webgpu-unsupported|load-failed)$/);
    expect(message).toContain('ferry-missing');
    await expect(createWebLlmEngine({ modelId: 'no-such-model' })).rejects.toMatchObject({ code: 'llm/unknown-model' });
  });
});
