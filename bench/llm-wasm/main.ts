/**
 * Runs in headless Chromium (served by bench/llm-wasm.ts): loads the model at /model.gguf into an engine opened as the
 * app opens it, in a Web Worker as the app runs it, and measures prefill and decode throughput, decoding under a
 * grammar, and a resume from a KV state served at /kv.state.
 */
import { wrap } from 'comlink';
import type * as Throughput from '../../src/browser/llm/throughput.ts';

const measures = wrap<Pick<typeof Throughput, 'measureEngineThroughput' | 'measureGrammarOverhead' | 'measureKvResume'>>(new Worker(new URL('./measure.worker.ts', import.meta.url), { type: 'module' }));
Object.assign(globalThis, {
  ferryWasmThroughput: (options: Throughput.ThroughputOptions) => measures.measureEngineThroughput(options),
  ferryWasmGrammar: (options: Throughput.GrammarOverheadOptions) => measures.measureGrammarOverhead(options),
  ferryWasmKvResume: (options: Throughput.KvResumeOptions) => measures.measureKvResume(options),
});
document.title = 'ready';
