/**
 * Prefill and decode speed of a browser engine as the app runs it, measured in the page: used by
 * bench/llm-wasm.ts. 'wllama' is the CPU engine as the app opens it (one thread); 'wllama-webgpu' is wllama 3
 * (llama.cpp's WebGPU backend), here allowed to run where it puts no layer on a GPU, so the same figure is its
 * CPU speed on a machine without a shader-f16 GPU. The engine's own stats time each phase; a warm-up run comes first.
 */
import { openBrowserEngine } from './open-engine.ts';
import { generateAll, type Engine } from '../../core/llm/index.ts';

export interface ThroughputOptions {
  readonly modelUrl: string;
  readonly promptTokens: number;
  readonly generateTokens: number;
  /** Default 'wllama'. */
  readonly engine?: 'wllama' | 'wllama-webgpu';
}

export interface Throughput {
  readonly prefillTps: number;
  readonly decodeTps: number;
  readonly device: string;
}

export async function measureEngineThroughput(options: ThroughputOptions): Promise<Throughput> {
  const model = await (await fetch(options.modelUrl)).blob();
  const contextSize = options.promptTokens + options.generateTokens + 16;
  let engine: Engine;
  if (options.engine === 'wllama-webgpu') {
    const { createWllamaGpuEngine } = await import('./wllama-gpu-engine.ts');
    engine = await createWllamaGpuEngine({ model, modelId: 'bench', contextSize, allowCpu: true });
  } else {
    engine = await openBrowserEngine({ kind: 'wllama', model, modelId: 'bench', contextSize, threads: 1 });
  }
  try {
    const vocabulary = (await engine.tokenize('the model of the agent and the device')).filter((id) => id > 2);
    // A prompt of exactly N ids (words of the vocabulary, repeated), different for each run so no KV is reused.
    const prompt = (shift: number) => [1, ...Array.from({ length: options.promptTokens - 1 }, (_, i) => vocabulary[(i + shift) % vocabulary.length]!)];
    await generateAll(engine, { prompt: { tokens: prompt(1).slice(0, 32) }, maxTokens: 8 });
    const done = await generateAll(engine, { prompt: { tokens: prompt(0) }, maxTokens: options.generateTokens });
    if (done.tokens.length < options.generateTokens) throw new Error(`the model stopped after ${done.tokens.length} of ${options.generateTokens} tokens`);
    return { prefillTps: done.stats.prefillTps, decodeTps: done.stats.decodeTps, device: engine.info.device ?? '' };
  } finally {
    await engine.dispose();
  }
}
