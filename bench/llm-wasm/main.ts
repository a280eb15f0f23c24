/**
 * Runs in headless Chromium (served by bench/llm-wasm.ts): loads the model at /model.gguf into the wllama engine
 * (single thread, opened as the app opens it) and measures prefill and decode throughput.
 */
import { measureEngineThroughput } from '../../src/browser/llm/throughput.ts';

(globalThis as unknown as { ferryWasmThroughput: typeof measureEngineThroughput }).ferryWasmThroughput = measureEngineThroughput;
document.title = 'ready';
