/**
 * What decides whether a session runs on the GPU, on this side of the browser: whether the device's GPU can run the
 * chosen web-llm model (gpuVerdict: the reasons a person reads) or the session's GGUF (offloadVerdict), which features a catalog entry needs, and reading a
 * web-llm model's chat template from its tokenizer_config.json — every malformed or missing case refused with a
 * typed error that lets the CPU engine take over.
 */
import { describe, expect, it } from 'vitest';
import { gpuVerdict, offloadVerdict, sessionEngine, type DeviceProbe } from '../../../src/browser/llm/device-probe.ts';
import { requiredFeatures, type WebLlmModelRecord } from '../../../src/browser/llm/webllm-catalog.ts';
import { fetchChatTemplate, modelFileUrl } from '../../../src/browser/llm/webllm-template.ts';

const limits = { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: 2 ** 30, maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256 };
const gpu = (features: string[], isFallbackAdapter = false): DeviceProbe => ({
  webgpu: { available: true, vendor: 'acme', architecture: 'x', description: '', isFallbackAdapter, features, shaderF16: features.includes('shader-f16'), limits },
  deviceMemoryGiB: 8,
  hardwareConcurrency: 4,
  crossOriginIsolated: false,
});
const noGpu: DeviceProbe = { webgpu: { available: false, reason: 'navigator.gpu is missing' }, deviceMemoryGiB: 8, hardwareConcurrency: 4, crossOriginIsolated: false };
const record = (model_id: string, extra: Partial<WebLlmModelRecord> = {}): WebLlmModelRecord => ({ model: `https://huggingface.co/mlc-ai/${model_id}`, model_id, model_lib: 'https://example.org/lib.wasm', ...extra });
const catalog = [record('Tiny-q4f32_1-MLC'), record('Tiny-q4f16_1-MLC'), record('Declared-q4f32_1-MLC', { required_features: ['shader-f16'] })];

describe('which GPU model runs here', () => {
  it('f16 quantizations need shader-f16 even where the catalog does not say so', () => {
    expect(requiredFeatures(record('Llama-3.2-1B-Instruct-q4f16_1-MLC'))).toEqual(['shader-f16']);
    expect(requiredFeatures(record('SmolLM2-135M-Instruct-q0f16-MLC'))).toEqual(['shader-f16']);
    expect(requiredFeatures(record('Llama-3.2-1B-Instruct-q4f32_1-MLC'))).toEqual([]);
    expect(requiredFeatures(record('Declared-q4f32_1-MLC', { required_features: ['shader-f16'] }))).toEqual(['shader-f16']);
  });

  it('the chosen model runs where the adapter can run it, a software adapter included (the person chose it)', () => {
    expect(gpuVerdict('Tiny-q4f32_1-MLC', gpu([], true), catalog)).toEqual({ ok: true });
    expect(gpuVerdict('Tiny-q4f16_1-MLC', gpu(['shader-f16']), catalog)).toEqual({ ok: true });
  });

  it('and says why not otherwise', () => {
    expect(gpuVerdict('Tiny-q4f16_1-MLC', gpu([]), catalog)).toEqual({ ok: false, reason: "This device's GPU cannot run Tiny-q4f16_1-MLC: needs shader-f16." });
    expect(gpuVerdict('Gone-q4f32_1-MLC', gpu([]), catalog)).toEqual({ ok: false, reason: "The GPU model Gone-q4f32_1-MLC is not in web-llm's catalog (any more); choose another on the Models screen." });
    const none = gpuVerdict('Tiny-q4f32_1-MLC', noGpu, []);
    expect(none.ok).toBe(false);
    expect(!none.ok && none.reason).toMatch(/^You chose web-llm, but it needs WebGPU\. This device has no WebGPU: navigator\.gpu is missing\.$/);
  });
});

describe('whether a GGUF model goes on the GPU (llama.cpp WebGPU)', () => {
  it('where a hardware adapter has shader-f16, and says why not otherwise', () => {
    expect(offloadVerdict(gpu(['shader-f16']))).toEqual({ ok: true });
    expect(offloadVerdict(gpu([]))).toEqual({ ok: false, reason: "The WebGPU adapter (acme x) lacks shader-f16, which llama.cpp's WebGPU backend needs." });
    expect(offloadVerdict(gpu(['shader-f16'], true))).toEqual({ ok: false, reason: 'The only WebGPU adapter (acme x) is a software fallback, slower than the CPU engine.' });
    expect(offloadVerdict(noGpu)).toEqual({ ok: false, reason: 'This device has no WebGPU: navigator.gpu is missing.' });
  });

  it('the Models screen says what sessions run on, in the agent host’s order: the chosen web-llm model, the GGUF on the GPU, the CPU', () => {
    const webLlm = { engine: 'web-llm' as const, reason: 'WebGPU adapter acme x with shader-f16 runs 3 web-llm models on the GPU.' };
    const cpu = { engine: 'wllama' as const, reason: 'This device has no WebGPU.' };
    const unfit = { engine: 'wllama' as const, reason: 'You chose web-llm, but the WebGPU adapter (acme x) can run no web-llm model: its limits are too small. Using llama.cpp on the CPU, one thread.' };
    const can = { ok: true } as const;
    const cannot = { ok: false, reason: 'no shader-f16' } as const;
    expect(sessionEngine(webLlm, { gpuModel: 'Tiny-q4f16_1-MLC', ggufOnGpu: true }, can)).toEqual(webLlm);
    expect(sessionEngine(webLlm, { gpuModel: '', ggufOnGpu: true }, can)).toMatchObject({ engine: 'wllama-webgpu', reason: expect.stringMatching(/^The GPU has shader-f16: sessions run their GGUF model on it/) });
    expect(sessionEngine(webLlm, { gpuModel: '', ggufOnGpu: false }, can)).toEqual({ engine: 'wllama', reason: `No web-llm model is chosen, so sessions run their GGUF model with llama.cpp on the CPU. ${webLlm.reason} Choose one below to use it.` });
    expect(sessionEngine(webLlm, { gpuModel: '', ggufOnGpu: true }, cannot)).toMatchObject({ engine: 'wllama' });
    // A chosen web-llm model this GPU cannot run: the GGUF goes on the GPU where it can, as the agent host does.
    expect(sessionEngine(unfit, { gpuModel: 'Tiny-q4f16_1-MLC', ggufOnGpu: true }, can)).toEqual({
      engine: 'wllama-webgpu',
      reason: "You chose web-llm, but the WebGPU adapter (acme x) can run no web-llm model: its limits are too small. The GPU has shader-f16: sessions run their GGUF model on it through llama.cpp's WebGPU backend, and on the CPU if the GPU fails.",
    });
    expect(sessionEngine(cpu, { gpuModel: '', ggufOnGpu: true }, null)).toEqual(cpu);
  });
});

describe("a web-llm model's chat template", () => {
  const model = record('Tiny-q4f32_1-MLC');
  const serve = (body: string, init: ResponseInit = {}): typeof fetch => (async () => new Response(body, init)) as typeof fetch;

  it('is read from tokenizer_config.json next to the weights, in every form Hugging Face writes it', async () => {
    expect(modelFileUrl(model, 'tokenizer_config.json')).toBe('https://huggingface.co/mlc-ai/Tiny-q4f32_1-MLC/resolve/main/tokenizer_config.json');
    expect(modelFileUrl({ model: 'https://mirror.example/m/resolve/v2/' }, 'x.json')).toBe('https://mirror.example/m/resolve/v2/x.json');
    const seen: string[] = [];
    const fetcher = (async (url: string) => (seen.push(url), new Response(JSON.stringify({ chat_template: '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}', bos_token: '<s>', eos_token: { content: '</s>', lstrip: false } })))) as unknown as typeof fetch;
    expect(await fetchChatTemplate(model, fetcher)).toEqual({ chatTemplate: '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}', bosToken: '<s>', eosToken: '</s>' });
    expect(seen).toEqual([modelFileUrl(model, 'tokenizer_config.json')]);
    const named = JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }], bos_token: null });
    expect(await fetchChatTemplate(model, serve(named))).toEqual({ chatTemplate: 'D' });
  });

  it('is refused, with the CPU engine to take over, when missing, unreachable or malformed', async () => {
    const cases: [typeof fetch, RegExp][] = [
      [serve(JSON.stringify({ bos_token: '<s>' })), /has no chat_template/],
      [serve('not json'), /is not JSON/],
      [serve(JSON.stringify({ chat_template: 42 })), /is malformed/],
      [serve(JSON.stringify({ chat_template: 'x'.repeat(300_000) })), /over 262144 characters/],
      [serve('{}', { status: 404 }), /could not be fetched: HTTP 404/],
      [serve('{}', { headers: { 'content-length': String(64 * 2 ** 20) } }), /over the 8388608-byte limit/],
      [(async () => Promise.reject(new TypeError('Failed to fetch'))) as typeof fetch, /could not be fetched: Failed to fetch/],
    ];
    for (const [fetcher, why] of cases) {
      const err = await fetchChatTemplate(model, fetcher).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'llm/no-chat-template', details: { fallback: 'wllama', engine: 'web-llm' } });
      expect((err as Error).message).toMatch(/^The web-llm model Tiny-q4f32_1-MLC has no chat template Ferry can use \(.*\)\. Using llama.cpp on the CPU instead\.$/);
      expect((err as Error).message).toMatch(why);
    }
  });
});
