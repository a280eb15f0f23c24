/**
 * Runs in headless Chromium (served by bench/llm-wasm.ts): loads the model at /model.gguf into the wllama engine
 * (single thread, opened as the app opens it) and measures prefill and decode throughput, and decoding under a grammar.
 */
import { measureEngineThroughput, measureGrammarOverhead } from '../../src/browser/llm/throughput.ts';

Object.assign(globalThis, { ferryWasmThroughput: measureEngineThroughput, ferryWasmGrammar: measureGrammarOverhead });
document.title = 'ready';
