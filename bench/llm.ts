/**
 * LLM engine benchmarks (issue 5), on the tiny test model and larger generated ones (512 wide, 8 layers; f32, and
 * quantized as phones run models: Q4_0, Q8_0, on which only the throughputs are measured):
 * - node-llama-cpp (CPU, 1 thread) prefill and decode tokens/s, and the CPU engine (llama.cpp in WebAssembly, 1 thread)
 *   in Chromium on the same file in the same run (bench/llm-wasm.ts), with the wasm/native ratios; wllama 3 (the
 *   GGUF-on-WebGPU engine, on the CPU where the machine has no shader-f16 GPU) against the CPU engine; on the f32 512
 *   model, the CPU engine on two threads against one (threads_scaling), with node-llama-cpp's own (threads_scaling_native) and the cores other processes kept busy
 *   during the two-thread runs (threads_other_cores, _native: two threads need both cores free at once). The browser
 *   figures are medians of rounds that take each configuration in turn;
 * - time to first token after a resume of n = 256, 1024, 4096 tokens, by loading a shipped KV state against
 *   re-prefilling the transcript's ids, and the KV state's size per token: what the placement policy weighs; and on
 *   the CPU engine in Chromium (n = 256, 1024: resume_kv_ms_wasm_<n>), loading node-llama-cpp's state — a session
 *   handed back from a cloud worker to a device without a GPU — against prefilling as many ids there;
 * - time to the first token of a fork of an n-token parent (n = 512, 2048, 4096), its prefix's KV copied from the
 *   parent's slot, against prefilling the same fork's prompt on a cold slot (goal: ≥ 5× at 4096);
 * - grammar_overhead: decode tokens/s of a tool call under its grammar (built-in tools' schemas) against free decoding
 *   of as many tokens from the same prompt (goal ≥ 0.8), on node-llama-cpp and on the CPU engine in Chromium
 *   (grammar_overhead_wasm).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateAll, type KvState } from '../src/core/llm/index.ts';
import { generateTinyModel, type TinyModelParams } from '../src/core/llm/gguf/index.ts';
import { tinyVocabulary, TokenType } from '../src/core/llm/gguf/tiny-model.ts';
import { toolCallGrammar } from '../src/core/llm/tool-grammar.ts';
import { createNodeLlamaEngine, type NodeLlamaEngine } from '../server/llm/node-llama-engine.ts';
import { docsSpec } from '../components/docs/spec.ts';
import { jsSpec } from '../components/js/spec.ts';
import { notesSpec } from '../components/notes/spec.ts';
import { workspaceSpec } from '../components/workspace/spec.ts';
import { compared, otherCpuMeter, type Figures, type Suite } from './lib.ts';
// Types only: the module itself (and Chromium) loads on first use, below.
import type * as LlmWasm from './llm-wasm.ts';

const WIDE = { embd: 512, layers: 8, heads: 8, kvHeads: 4, ff: 1536, ctx: 8192, seed: 11 } as const;
/** `throughputOnly`: no grammar, resume or fork figures; `threads`: also the CPU engine on two threads. */
const MODELS: Array<{ suffix: string; params: Partial<TinyModelParams>; promptTokens: number; generateTokens: number; throughputOnly?: true; threads?: true }> = [
  { suffix: '', params: { ...WIDE, type: 'f32' }, promptTokens: 256, generateTokens: 64, threads: true },
  { suffix: '_q4', params: { ...WIDE, type: 'q4_0' }, promptTokens: 256, generateTokens: 64, throughputOnly: true },
  { suffix: '_q8', params: { ...WIDE, type: 'q8_0' }, promptTokens: 256, generateTokens: 64, throughputOnly: true },
  { suffix: '_tiny', params: { ctx: 8192 }, promptTokens: 256, generateTokens: 128 },
];
const RESUME_LENGTHS = [256, 1024, 4096];
const WASM_RESUME_LENGTHS = [256, 1024];
const FORK_LENGTHS = [512, 2048, 4096];
/** What a fork adds to its parent's conversation (a new user turn). */
const FORK_SUFFIX = 32;
const RUNS = 3;

const normal = tinyVocabulary().types.flatMap((type, id) => (type === TokenType.NORMAL ? [id] : []));

/** A deterministic prompt of `n` ids (BOS first); each `variant` differs from its second id on (no shared cache). */
function promptOf(n: number, variant: number): number[] {
  return [1, ...Array.from({ length: n - 1 }, (_, i) => normal[(i * 7919 + variant * 104729) % normal.length]!)];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function engine(modelPath: string, sha256?: string, slots = 1): Promise<NodeLlamaEngine> {
  return createNodeLlamaEngine({ modelPath, gpu: false, threads: 1, slots, contextSize: 4352, ...(sha256 ? { modelSha256: sha256 } : {}) });
}

async function throughput(e: NodeLlamaEngine, promptTokens: number, generateTokens: number): Promise<{ prefillTps: number; decodeTps: number }> {
  await generateAll(e, { prompt: { tokens: promptOf(promptTokens, 99) }, maxTokens: 8 }); // warm-up
  const prefill: number[] = [];
  const decode: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const done = await generateAll(e, { prompt: { tokens: promptOf(promptTokens, run) }, maxTokens: generateTokens });
    prefill.push(done.stats.prefillTps);
    decode.push(done.stats.decodeTps);
  }
  return { prefillTps: median(prefill), decodeTps: median(decode) };
}

/** A tool call's grammar as the runtime builds it: the four built-in tools, fitted to a 512-token budget. */
const CALL_BUDGET = 512;
const CALL_GRAMMAR = toolCallGrammar([notesSpec, workspaceSpec, docsSpec, jsSpec], { withOpenTag: true, budget: CALL_BUDGET }).gbnf;

/** Decode tokens/s under a tool-call grammar (greedy) against free decoding of as many tokens, medians over prompts. */
async function grammarOverhead(e: NodeLlamaEngine, promptTokens: number): Promise<{ constrained: number; free: number }> {
  const grammar = { kind: 'gbnf' as const, text: CALL_GRAMMAR };
  await generateAll(e, { prompt: { tokens: promptOf(promptTokens, 98) }, maxTokens: 8, grammar }); // warm-up (compiles the grammar)
  const constrained: number[] = [];
  const free: number[] = [];
  for (let run = 0; run < RUNS * 2; run++) {
    const call = await generateAll(e, { prompt: { tokens: promptOf(promptTokens, run) }, maxTokens: CALL_BUDGET, grammar });
    const plain = await generateAll(e, { prompt: { tokens: promptOf(promptTokens, run) }, maxTokens: call.tokens.length });
    constrained.push(call.stats.decodeTps);
    free.push(plain.stats.decodeTps);
  }
  return { constrained: median(constrained), free: median(free) };
}

/** Time to the first token of a resumed generation of n tokens: loading its KV state vs re-prefilling its ids. */
async function resume(source: NodeLlamaEngine, target: NodeLlamaEngine, n: number): Promise<{ kvMs: number; prefillMs: number; bytesPerToken: number }> {
  const kvTimes: number[] = [];
  const prefillTimes: number[] = [];
  let state: KvState | undefined;
  // A 4096-token re-prefill of the larger model takes ~25 s on one thread: measured once to keep the suite short.
  const runs = n >= 4096 ? 1 : RUNS;
  for (let run = 0; run < runs; run++) {
    const prompt = promptOf(n, run + 10);
    // The interrupted run: n ids in its KV cache, its last generated token still to evaluate.
    const before = await generateAll(source, { prompt: { tokens: prompt }, maxTokens: 1, slot: 'src' });
    state = await source.saveKv('src');
    await source.releaseSlot('src');
    const next = before.tokens[0]!;

    const t0 = performance.now();
    await target.loadKv('kv', state);
    const viaKv = await generateAll(target, { prompt: { tokens: [...state.tokens, next] }, maxTokens: 1, slot: 'kv' });
    kvTimes.push(performance.now() - t0);
    if (viaKv.stats.cachedTokens !== state.tokens.length) throw new Error('the loaded KV state was not used');
    await target.releaseSlot('kv');

    const other = promptOf(n, run + 50); // nothing of it is cached
    const t1 = performance.now();
    const viaPrefill = await generateAll(target, { prompt: { tokens: other.slice(0, state.tokens.length + 1) }, maxTokens: 1, slot: 'prefill' });
    prefillTimes.push(performance.now() - t1);
    if (viaPrefill.stats.cachedTokens > 1) throw new Error('the re-prefill reused a cache');
    await target.releaseSlot('prefill');
  }
  return { kvMs: median(kvTimes), prefillMs: median(prefillTimes), bytesPerToken: state ? state.bytes.length / state.tokens.length : 0 };
}

/**
 * Time to the first token of a fork of an n-token parent: on a 2-slot engine where the parent's slot holds its
 * conversation (its prefix's KV is copied), and the same prompt prefilled on `cold`'s one slot after an unrelated one.
 */
async function fork(shared: NodeLlamaEngine, cold: NodeLlamaEngine, n: number): Promise<{ sharedMs: number; coldMs: number }> {
  const sharedTimes: number[] = [];
  const coldTimes: number[] = [];
  // A 4096-token prefill of the larger model takes ~25 s on one thread (twice per run here): measured once.
  const runs = n >= 4096 ? 1 : RUNS;
  for (let run = 0; run < runs; run++) {
    const parentPrompt = promptOf(n, run + 70);
    const parent = await generateAll(shared, { prompt: { tokens: parentPrompt }, maxTokens: 1, slot: 'parent' });
    const prompt = [...parentPrompt, ...parent.tokens, ...promptOf(FORK_SUFFIX + 1, run + 80).slice(1)];

    const t0 = performance.now();
    const viaShare = await generateAll(shared, { prompt: { tokens: prompt }, maxTokens: 1, slot: 'fork' });
    sharedTimes.push(performance.now() - t0);
    if (viaShare.stats.cachedTokens < n) throw new Error(`the fork reused ${viaShare.stats.cachedTokens} of its parent's ${n} tokens`);
    await shared.releaseSlot('fork');
    await shared.releaseSlot('parent');

    await generateAll(cold, { prompt: { tokens: promptOf(8, run + 90) }, maxTokens: 1 }); // nothing of the fork cached
    const t1 = performance.now();
    const viaPrefill = await generateAll(cold, { prompt: { tokens: prompt }, maxTokens: 1 });
    coldTimes.push(performance.now() - t1);
    if (viaPrefill.stats.cachedTokens > 1) throw new Error('the unshared fork reused a cache');
    // f32 sums in other batch shapes may round differently: a disagreement is reported, the timing still stands.
    if (viaPrefill.tokens[0] !== viaShare.tokens[0]) console.log(`fork ${n}: shared first token ${viaShare.tokens[0]}, unshared ${viaPrefill.tokens[0]}`);
  }
  return { sharedMs: median(sharedTimes), coldMs: median(coldTimes) };
}

type WasmMeasure = typeof LlmWasm;
type WasmThroughput = Awaited<ReturnType<WasmMeasure['measureWasmThroughput']>>;

/** bench/llm-wasm.ts (the browser engines' side) when it is there and Chromium runs; otherwise why not. */
async function wasmMeasure(): Promise<WasmMeasure | string> {
  try {
    return await import('./llm-wasm.ts');
  } catch (err) {
    return `bench/llm-wasm.ts could not be loaded: ${(err as Error).message}`;
  }
}

/**
 * The browser throughputs of one model: the CPU engine (1 thread), wllama 3, and with `threads` the CPU engine on two threads, each
 * the median of `rounds` rounds that take every configuration in turn (the load of a shared machine drifts).
 */
async function wasmThroughputs(wasm: WasmMeasure, run: { modelPath: string; promptTokens: number; generateTokens: number }, rounds: number, threads: boolean, onlyThreads = false): Promise<{ measured: Map<string, WasmThroughput>; otherCores?: number }> {
  const configs: Record<string, { engine?: 'wllama-webgpu'; threads?: number }> = {
    wllama: { threads: 1 },
    ...(onlyThreads ? {} : { wllama3: { engine: 'wllama-webgpu' as const } }),
    ...(threads ? { threads: { threads: 2 } } : {}),
  };
  const runs = new Map<string, WasmThroughput[]>(Object.keys(configs).map((c) => [c, []]));
  const meter = otherCpuMeter();
  for (let round = 0; round < rounds; round++) {
    for (const [name, config] of Object.entries(configs)) {
      const measure = () => wasm.measureWasmThroughput({ ...run, ...config });
      runs.get(name)!.push(await (name === 'threads' ? meter.measure(measure) : measure()));
    }
  }
  const measured = new Map([...runs].map(([name, all]) => [name, { prefillTps: median(all.map((r) => r.prefillTps)), decodeTps: median(all.map((r) => r.decodeTps)), device: all[0]!.device }]));
  const otherCores = meter.otherCores();
  return { measured, ...(otherCores === undefined ? {} : { otherCores }) };
}

/** The CPU engine on two threads against one: decode speeds, the scaling, and the cores other processes took meanwhile. */
function threadFigures(figures: Figures, x: string, one: WasmThroughput, two: WasmThroughput, otherCores: number | undefined): void {
  console.log(`CPU engine${x} on two threads ran on: ${two.device}`);
  figures[`decode_tps_wasm_threads${x}`] = compared(two.decodeTps, 'tok/s', `decode_tps_wasm${x}`, one.decodeTps);
  figures[`prefill_tps_wasm_threads${x}`] = compared(two.prefillTps, 'tok/s', `prefill_tps_wasm${x}`, one.prefillTps);
  figures[`threads_scaling${x}`] = { value: two.decodeTps / one.decodeTps, unit: 'x' };
  // Two threads decode fast only while both cores are free: each op of a token's graph (about 20 a layer) ends in a
  // barrier both threads must reach, so a thread waiting for a core stalls the other.
  if (otherCores !== undefined) figures[`threads_other_cores${x}`] = { value: otherCores, unit: 'cores' };
}

/** node-llama-cpp on two threads against one on the same file: what llama.cpp's threads give here outside a browser. */
async function nativeThreadFigures(figures: Figures, file: string, model: (typeof MODELS)[number], one: { decodeTps: number }): Promise<void> {
  const x = model.suffix;
  const two = await createNodeLlamaEngine({ modelPath: file, gpu: false, threads: 2, contextSize: 4352 });
  try {
    const meter = otherCpuMeter();
    const measured = await meter.measure(() => throughput(two, model.promptTokens, model.generateTokens));
    figures[`decode_tps_native_threads${x}`] = compared(measured.decodeTps, 'tok/s', `decode_tps_native${x}`, one.decodeTps);
    figures[`threads_scaling_native${x}`] = { value: measured.decodeTps / one.decodeTps, unit: 'x' };
    const otherCores = meter.otherCores();
    if (otherCores !== undefined) figures[`threads_other_cores_native${x}`] = { value: otherCores, unit: 'cores' };
  } finally {
    await two.dispose();
  }
}

/** The browser figures of one model: throughputs against node-llama-cpp's, wllama 3 against the CPU engine, threads; grammar cost. */
async function wasmFigures(figures: Figures, wasm: WasmMeasure, file: string, model: (typeof MODELS)[number], native: { prefillTps: number; decodeTps: number }): Promise<void> {
  const x = model.suffix;
  try {
    const { measured, otherCores } = await wasmThroughputs(wasm, { modelPath: file, promptTokens: model.promptTokens, generateTokens: model.generateTokens }, x === '_tiny' ? 1 : RUNS, model.threads === true);
    const w = measured.get('wllama')!;
    figures[`decode_tps_wasm${x}`] = compared(w.decodeTps, 'tok/s', `decode_tps_native${x}`, native.decodeTps);
    figures[`prefill_tps_wasm${x}`] = compared(w.prefillTps, 'tok/s', `prefill_tps_native${x}`, native.prefillTps);
    figures[`wasm_native_decode${x}`] = { value: w.decodeTps / native.decodeTps, unit: 'x' };
    figures[`wasm_native_prefill${x}`] = { value: w.prefillTps / native.prefillTps, unit: 'x' };
    // The GPU engine (wllama 3) where this machine has no shader-f16 GPU runs on the CPU: its speed against the CPU engine.
    const v3 = measured.get('wllama3')!;
    console.log(`wllama 3${x} ran on: ${v3.device}`);
    figures[`decode_tps_wllama3${x}`] = compared(v3.decodeTps, 'tok/s', `decode_tps_wasm${x}`, w.decodeTps);
    figures[`prefill_tps_wllama3${x}`] = compared(v3.prefillTps, 'tok/s', `prefill_tps_wasm${x}`, w.prefillTps);
    const two = measured.get('threads');
    if (two) threadFigures(figures, x, w, two, otherCores);
  } catch (err) {
    console.log(`wasm figures${x} failed: ${(err as Error).message}`);
  }
  if (!model.throughputOnly) await wasmGrammarFigures(figures, wasm, file, model);
}

/** The CPU engine's decode speed under the tool-call grammar against free decoding, in the same page. */
async function wasmGrammarFigures(figures: Figures, wasm: WasmMeasure, file: string, model: (typeof MODELS)[number]): Promise<void> {
  const x = model.suffix;
  try {
    const g = await wasm.measureWasmGrammar({ modelPath: file, promptTokens: model.promptTokens, grammar: CALL_GRAMMAR, maxTokens: CALL_BUDGET, runs: RUNS * 2 });
    figures[`decode_tps_wasm_free${x}`] = { value: g.freeTps, unit: 'tok/s' };
    figures[`decode_tps_wasm_grammar${x}`] = compared(g.constrainedTps, 'tok/s', `decode_tps_wasm_free${x}`, g.freeTps);
    figures[`grammar_overhead_wasm${x}`] = { value: g.constrainedTps / g.freeTps, unit: 'x' };
  } catch (err) {
    console.log(`wasm grammar figures${x} failed: ${(err as Error).message}`);
  }
}

/** node-llama-cpp's decode speed under the tool-call grammar against free decoding. */
async function nativeGrammarFigures(figures: Figures, source: NodeLlamaEngine, model: (typeof MODELS)[number]): Promise<void> {
  const x = model.suffix;
  const grammar = await grammarOverhead(source, model.promptTokens);
  figures[`decode_tps_free${x}`] = { value: grammar.free, unit: 'tok/s' };
  figures[`decode_tps_grammar${x}`] = compared(grammar.constrained, 'tok/s', `decode_tps_free${x}`, grammar.free);
  figures[`grammar_overhead${x}`] = { value: grammar.constrained / grammar.free, unit: 'x' };
}

/**
 * The CPU engine in Chromium resuming from node-llama-cpp's KV state of n ids (the two run one llama.cpp, so they share
 * the state format), against prefilling as many ids there.
 */
async function wasmKvFigures(figures: Figures, wasm: WasmMeasure, file: string, dir: string, source: NodeLlamaEngine): Promise<void> {
  try {
    for (const n of WASM_RESUME_LENGTHS) {
      const kv: number[] = [];
      const prefill: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const before = await generateAll(source, { prompt: { tokens: promptOf(n, run + 10) }, maxTokens: 1, slot: 'src' });
        const state = await source.saveKv('src');
        await source.releaseSlot('src');
        const statePath = path.join(dir, 'kv.state');
        await writeFile(statePath, state.bytes);
        const r = await wasm.measureWasmKvResume({
          modelPath: file,
          statePath,
          modelId: source.info.model,
          state: { engine: state.engine, model: state.model, tokens: [...state.tokens] },
          next: before.tokens[0]!,
          cold: promptOf(state.tokens.length + 1, run + 50),
        });
        if (r.cachedTokens !== state.tokens.length) throw new Error(`the CPU engine found ${r.cachedTokens} of the state's ${state.tokens.length} ids cached: the state was not used`);
        kv.push(r.kvMs);
        prefill.push(r.prefillMs);
      }
      figures[`resume_prefill_ms_wasm_${n}`] = { value: median(prefill), unit: 'ms' };
      figures[`resume_kv_ms_wasm_${n}`] = compared(median(kv), 'ms', `resume_prefill_ms_wasm_${n}`, median(prefill));
    }
  } catch (err) {
    console.log(`wasm KV resume figures failed: ${(err as Error).message}`);
  }
}

/** Grammar overhead, KV-state resumes and forks on node-llama-cpp. */
async function nativeFigures(figures: Figures, file: string, source: NodeLlamaEngine, model: (typeof MODELS)[number]): Promise<void> {
  const x = model.suffix;
  await nativeGrammarFigures(figures, source, model);
  const target = await engine(file, source.info.model);
  try {
    let bytesPerToken = 0;
    for (const n of RESUME_LENGTHS) {
      const r = await resume(source, target, n);
      figures[`resume_prefill_ms_${n}${x}`] = { value: r.prefillMs, unit: 'ms' };
      figures[`resume_kv_ms_${n}${x}`] = compared(r.kvMs, 'ms', `resume_prefill_ms_${n}${x}`, r.prefillMs);
      bytesPerToken = r.bytesPerToken;
    }
    figures[`kv_bytes_per_token${x}`] = { value: bytesPerToken, unit: 'bytes' };
    const shared = await engine(file, source.info.model, 2);
    try {
      for (const n of FORK_LENGTHS) {
        const f = await fork(shared, target, n);
        figures[`fork_prefill_ms_${n}${x}`] = { value: f.coldMs, unit: 'ms' };
        figures[`fork_first_token_ms_${n}${x}`] = compared(f.sharedMs, 'ms', `fork_prefill_ms_${n}${x}`, f.coldMs);
        figures[`fork_speedup_${n}${x}`] = { value: f.coldMs / f.sharedMs, unit: 'x' };
      }
    } finally {
      await shared.dispose();
    }
  } finally {
    await target.dispose();
  }
}

async function run(): Promise<Figures> {
  const figures: Figures = {};
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-bench-llm-'));
  const wasm = await wasmMeasure();
  if (typeof wasm === 'string') console.log(`wasm figures skipped: ${wasm}`);
  try {
    for (const model of MODELS) {
      const file = path.join(dir, `model${model.suffix || '_bench'}.gguf`);
      await writeFile(file, generateTinyModel(model.params));
      const source = await engine(file);
      try {
        const native = await throughput(source, model.promptTokens, model.generateTokens);
        figures[`decode_tps_native${model.suffix}`] = { value: native.decodeTps, unit: 'tok/s' };
        figures[`prefill_tps_native${model.suffix}`] = { value: native.prefillTps, unit: 'tok/s' };
        if (model.threads) await nativeThreadFigures(figures, file, model, native);
        if (typeof wasm !== 'string') await wasmFigures(figures, wasm, file, model, native);
        if (!model.throughputOnly) await nativeFigures(figures, file, source, model);
        if (typeof wasm !== 'string' && model.threads) await wasmKvFigures(figures, wasm, file, dir, source);
      } finally {
        await source.dispose();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}

/** Only the grammar figures (native and wasm), for work on the constrained path. */
async function runGrammar(): Promise<Figures> {
  const figures: Figures = {};
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-bench-llm-'));
  const wasm = await wasmMeasure();
  if (typeof wasm === 'string') console.log(`wasm figures skipped: ${wasm}`);
  try {
    for (const model of MODELS.filter((m) => !m.throughputOnly)) {
      const file = path.join(dir, `model${model.suffix || '_bench'}.gguf`);
      await writeFile(file, generateTinyModel(model.params));
      const source = await engine(file);
      try {
        await nativeGrammarFigures(figures, source, model);
        if (typeof wasm !== 'string') await wasmGrammarFigures(figures, wasm, file, model);
      } finally {
        await source.dispose();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}

/** The f32 benchmark model on disk and node-llama-cpp on it, for the suites that measure one part of this one. */
async function onBenchModel(run: (file: string, dir: string, source: NodeLlamaEngine, model: (typeof MODELS)[number]) => Promise<void>): Promise<void> {
  const model = MODELS.find((m) => m.threads)!;
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-bench-llm-'));
  try {
    const file = path.join(dir, 'model_bench.gguf');
    await writeFile(file, generateTinyModel(model.params));
    const source = await engine(file);
    try {
      await run(file, dir, source, model);
    } finally {
      await source.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Only the thread figures (the CPU engine and node-llama-cpp on two threads against one), for work on threading. */
async function runThreads(): Promise<Figures> {
  const figures: Figures = {};
  await onBenchModel(async (file, _dir, source, model) => {
    const native = await throughput(source, model.promptTokens, model.generateTokens);
    figures.decode_tps_native = { value: native.decodeTps, unit: 'tok/s' };
    await nativeThreadFigures(figures, file, model, native);
    const wasm = await wasmMeasure();
    if (typeof wasm === 'string') {
      console.log(`wasm figures skipped: ${wasm}`);
      return;
    }
    const { measured, otherCores } = await wasmThroughputs(wasm, { modelPath: file, promptTokens: model.promptTokens, generateTokens: model.generateTokens }, RUNS, true, true);
    const one = measured.get('wllama')!;
    figures.decode_tps_wasm = { value: one.decodeTps, unit: 'tok/s' };
    figures.prefill_tps_wasm = { value: one.prefillTps, unit: 'tok/s' };
    threadFigures(figures, '', one, measured.get('threads')!, otherCores);
  });
  return figures;
}

/** Only the CPU engine's resumes from node-llama-cpp's KV state (generated f32 model), for work on KV handoff. */
async function runKv(): Promise<Figures> {
  const figures: Figures = {};
  const wasm = await wasmMeasure();
  if (typeof wasm === 'string') throw new Error(`the CPU engine cannot be measured: ${wasm}`);
  await onBenchModel((file, dir, source) => wasmKvFigures(figures, wasm, file, dir, source));
  return figures;
}

export const llmKvSuite: Suite = {
  name: 'llm-kv',
  description: 'the CPU engine (llama.cpp in WebAssembly, Chromium) resuming from node-llama-cpp’s KV state of 256 and 1024 ids vs prefilling them there (generated f32 model)',
  run: runKv,
};

export const llmThreadsSuite: Suite = {
  name: 'llm-threads',
  description: 'the thread figures of the llm suite only: the CPU engine and node-llama-cpp decode on two threads vs one, and the cores other processes took meanwhile (generated f32 model)',
  run: runThreads,
};

export const llmGrammarSuite: Suite = {
  name: 'llm-grammar',
  description: 'the grammar figures of the llm suite only: decode tok/s under the tool-call grammar vs free, node-llama-cpp and the CPU engine (generated models)',
  run: runGrammar,
};

export const llmSuite: Suite = {
  name: 'llm',
  description: 'node-llama-cpp vs the CPU engine (llama.cpp in WebAssembly) throughput (f32, Q4_0, Q8_0), its threads, wllama 3 vs it, KV-state resume vs re-prefill (native, and the CPU engine from node-llama-cpp’s state), forks, grammar overhead (generated models)',
  run,
};
