/**
 * A browser engine's prefill and decode speed in headless Chromium (through the same Engine the app uses; see
 * src/browser/llm/throughput.ts), for a model file on disk. bench/llm.ts compares these with node-llama-cpp on the
 * same file, and wllama 3 with wllama 2.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import type { ThroughputOptions, Throughput } from '../src/browser/llm/throughput.ts';

const pageRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), 'llm-wasm');

export async function measureWasmThroughput(options: { modelPath: string; promptTokens: number; generateTokens: number; engine?: ThroughputOptions['engine'] }): Promise<{ prefillTps: number; decodeTps: number; device: string }> {
  // The page fetches /model.gguf, streamed from disk by its server, so any file on disk can be measured.
  const chrome = await openChromiumPage(pageRoot, { files: { '/model.gguf': options.modelPath } });
  try {
    await chrome.load();
    const request: ThroughputOptions = { modelUrl: '/model.gguf', promptTokens: options.promptTokens, generateTokens: options.generateTokens, ...(options.engine ? { engine: options.engine } : {}) };
    const result: Throughput = await chrome.page.evaluate(
      (r) => (globalThis as unknown as { ferryWasmThroughput: (o: ThroughputOptions) => Promise<Throughput> }).ferryWasmThroughput(r),
      request,
    );
    return { prefillTps: result.prefillTps, decodeTps: result.decodeTps, device: result.device };
  } finally {
    await chrome.close();
  }
}
