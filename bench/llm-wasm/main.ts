/**
 * Runs in headless Chromium (served by bench/llm-wasm.ts): loads the model at /model.gguf into an engine opened as the
 * app opens it, in a Web Worker as the app runs it, and measures prefill and decode throughput, and decoding under a
 * grammar.
 */
import { wrap } from 'comlink';
import type * as Throughput from '../../src/browser/llm/throughput.ts';

const measures = wrap<Pick<typeof Throughput, 'measureEngineThroughput' | 'measureGrammarOverhead'>>(new Worker(new URL('./measure.worker.ts', import.meta.url), { type: 'module' }));
Object.assign(globalThis, {
  ferryWasmThroughput: (options: Throughput.ThroughputOptions) => measures.measureEngineThroughput(options),
  ferryWasmGrammar: (options: Throughput.GrammarOverheadOptions) => measures.measureGrammarOverhead(options),
});
document.title = 'ready';
