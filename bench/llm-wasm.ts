/**
 * wllama's prefill and decode speed in headless Chromium (one thread, in the LLM worker, through the same Engine
 * the app uses), for a model file on disk. bench/llm.ts compares these with node-llama-cpp on the same file.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import type { ThroughputOptions, Throughput } from '../src/browser/llm/throughput.ts';

const pageRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), 'llm-wasm');

export async function measureWasmThroughput(options: { modelPath: string; promptTokens: number; generateTokens: number }): Promise<{ prefillTps: number; decodeTps: number }> {
  // The page fetches /model.gguf, streamed from disk by its server, so any file on disk can be measured.
  const chrome = await openChromiumPage(pageRoot, { files: { '/model.gguf': options.modelPath } });
  try {
    await chrome.load();
    const request: ThroughputOptions = { modelUrl: '/model.gguf', promptTokens: options.promptTokens, generateTokens: options.generateTokens };
    const result: Throughput = await chrome.page.evaluate(
      (r) => (globalThis as unknown as { ferryWasmThroughput: (o: ThroughputOptions) => Promise<Throughput> }).ferryWasmThroughput(r),
      request,
    );
    return { prefillTps: result.prefillTps, decodeTps: result.decodeTps };
  } finally {
    await chrome.close();
  }
}
