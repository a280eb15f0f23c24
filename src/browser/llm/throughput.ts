/**
 * Prefill and decode speed of a browser engine as the app runs it, measured in the page: used by
 * bench/llm-wasm.ts. 'wllama' is the CPU engine (llama.cpp in WebAssembly) as the app opens it (`threads`, default one); 'wllama-webgpu' is wllama 3
 * (llama.cpp's WebGPU backend), here allowed to run where it puts no layer on a GPU, so the same figure is its
 * CPU speed on a machine without a shader-f16 GPU. The engine's own stats time each phase; a warm-up run comes first.
 * And the cost of a grammar: decode speed under a GBNF grammar against free decoding of as many tokens; and a resume on
 * the CPU engine from a KV state another engine saved (node-llama-cpp's: a session handed back from a cloud worker)
 * against prefilling the same number of ids.
 */
import { openBrowserEngine } from './open-engine.ts';
import { generateAll, type Engine, type KvState } from '../../core/llm/index.ts';

export interface ThroughputOptions {
  readonly modelUrl: string;
  readonly promptTokens: number;
  readonly generateTokens: number;
  /** Default 'wllama'. */
  readonly engine?: 'wllama' | 'wllama-webgpu';
  /** The CPU engine's threads (default 1; more need a cross-origin isolated page). */
  readonly threads?: number;
}

export interface Throughput {
  readonly prefillTps: number;
  readonly decodeTps: number;
  readonly device: string;
}

export interface GrammarOverheadOptions {
  readonly modelUrl: string;
  readonly promptTokens: number;
  /** The GBNF grammar of the constrained generations. */
  readonly grammar: string;
  /** Each constrained generation's budget; the grammar should end before it. */
  readonly maxTokens: number;
  /** Prompts to measure on (the figures are medians). */
  readonly runs: number;
}

export interface GrammarOverhead {
  /** Median decode tokens/s under the grammar, and freely for as many tokens from the same prompts. */
  readonly constrainedTps: number;
  readonly freeTps: number;
  readonly device: string;
}

export interface KvResumeOptions {
  readonly modelUrl: string;
  /** The model's id as the state names it (the file's SHA-256). */
  readonly modelId: string;
  /** Where the page fetches the state's bytes; the rest of the state as saved. */
  readonly stateUrl: string;
  readonly state: Omit<KvState, 'bytes'>;
  /** The id generated after the state's: the resumed prompt is the state's ids and it. */
  readonly next: number;
  /** As many ids as the resumed prompt, none of them cached: the re-prefill it is measured against. */
  readonly cold: readonly number[];
}

export interface KvResume {
  /** Loading the state, then the first token of the resumed prompt. */
  readonly kvMs: number;
  /** The first token of `cold`, prefilled. */
  readonly prefillMs: number;
  /** Prompt ids the resume found in the engine's KV (all but the last, when the state was used). */
  readonly cachedTokens: number;
}

/** On the CPU engine: the first token after loading a saved KV state, and after prefilling as many ids instead. */
export async function measureKvResume(options: KvResumeOptions): Promise<KvResume> {
  const [model, bytes] = await Promise.all([fetchBlob(options.modelUrl), fetchBlob(options.stateUrl).then(async (b) => new Uint8Array(await b.arrayBuffer()))]);
  const prompt = [...options.state.tokens, options.next];
  const engine = await openBrowserEngine({ kind: 'wllama', model, modelId: options.modelId, contextSize: prompt.length + 16 });
  try {
    // Warm-up: V8 compiles wasm in tiers; the measured calls should not run on baseline code.
    await generateAll(engine, { prompt: { tokens: options.cold.slice(0, 64) }, maxTokens: 1 });
    await engine.releaseSlot?.('');
    const t0 = performance.now();
    await engine.loadKv!('', { ...options.state, bytes });
    const resumed = await generateAll(engine, { prompt: { tokens: prompt }, maxTokens: 1 });
    const kvMs = performance.now() - t0;
    await engine.releaseSlot?.('');
    const t1 = performance.now();
    await generateAll(engine, { prompt: { tokens: options.cold }, maxTokens: 1 });
    return { kvMs, prefillMs: performance.now() - t1, cachedTokens: resumed.stats.cachedTokens };
  } finally {
    await engine.dispose();
  }
}

async function fetchBlob(url: string): Promise<Blob> {
  return (await fetch(url)).blob();
}

export async function measureEngineThroughput(options: ThroughputOptions): Promise<Throughput> {
  const { engine, prompt } = await openMeasured(options.modelUrl, options.promptTokens, options.promptTokens + options.generateTokens + 16, options.engine, options.threads);
  try {
    // The warm-up runs the measured shapes: V8 compiles wasm in tiers and a function already running keeps its
    // baseline code, so a short warm-up leaves the measured prefill on it (and a core busy compiling beside it).
    await generateAll(engine, { prompt: { tokens: prompt(1) }, maxTokens: 8 });
    const done = await generateAll(engine, { prompt: { tokens: prompt(0) }, maxTokens: options.generateTokens });
    if (done.tokens.length < options.generateTokens) throw new Error(`the model stopped after ${done.tokens.length} of ${options.generateTokens} tokens`);
    return { prefillTps: done.stats.prefillTps, decodeTps: done.stats.decodeTps, device: engine.info.device ?? '' };
  } finally {
    await engine.dispose();
  }
}

/** On wllama (the CPU engine as the app opens it): each run decodes under the grammar, then freely as far. */
export async function measureGrammarOverhead(options: GrammarOverheadOptions): Promise<GrammarOverhead> {
  const { engine, prompt } = await openMeasured(options.modelUrl, options.promptTokens, options.promptTokens + options.maxTokens + 16);
  const grammar = { kind: 'gbnf' as const, text: options.grammar };
  try {
    await generateAll(engine, { prompt: { tokens: prompt(1).slice(0, 32) }, maxTokens: 8, grammar });
    const constrained: number[] = [];
    const free: number[] = [];
    for (let run = 0; run < options.runs; run++) {
      const call = await generateAll(engine, { prompt: { tokens: prompt(run) }, maxTokens: options.maxTokens, grammar });
      const plain = await generateAll(engine, { prompt: { tokens: prompt(run) }, maxTokens: call.tokens.length });
      constrained.push(call.stats.decodeTps);
      free.push(plain.stats.decodeTps);
    }
    return { constrainedTps: median(constrained), freeTps: median(free), device: engine.info.device ?? '' };
  } finally {
    await engine.dispose();
  }
}

/** The engine on the model at `modelUrl`, and prompts of exactly `promptTokens` ids, a different one per shift. */
async function openMeasured(modelUrl: string, promptTokens: number, contextSize: number, kind: ThroughputOptions['engine'] = 'wllama', threads = 1): Promise<{ engine: Engine; prompt(shift: number): number[] }> {
  const model = await fetchBlob(modelUrl);
  let engine: Engine;
  if (kind === 'wllama-webgpu') {
    const { createWllamaGpuEngine } = await import('./wllama-gpu-engine.ts');
    engine = await createWllamaGpuEngine({ model, modelId: 'bench', contextSize, allowCpu: true });
  } else {
    engine = await openBrowserEngine({ kind: 'wllama', model, modelId: 'bench', contextSize, threads });
  }
  const vocabulary = (await engine.tokenize('the model of the agent and the device')).filter((id) => id > 2);
  // Words of the vocabulary, repeated, different for each shift so no KV is reused.
  return { engine, prompt: (shift) => [1, ...Array.from({ length: promptTokens - 1 }, (_, i) => vocabulary[(i + shift) % vocabulary.length]!)] };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}
