/**
 * wllama's prefill and decode speed in headless Chromium (one thread, in the LLM worker, through the same Engine
 * the app uses), for a model file on disk. bench/llm.ts compares these with node-llama-cpp on the same file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import type { ThroughputOptions, Throughput } from '../src/browser/llm/throughput.ts';

const pageRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), 'llm-wasm');

export async function measureWasmThroughput(options: { modelPath: string; promptTokens: number; generateTokens: number }): Promise<{ prefillTps: number; decodeTps: number }> {
  const model = await readFile(options.modelPath);
  const chrome = await openChromiumPage(pageRoot);
  try {
    // The page fetches /model.gguf; Playwright answers from memory, so any file on disk can be measured.
    await chrome.page.route('**/model.gguf', (route) => route.fulfill({ status: 200, body: model, contentType: 'application/octet-stream' }));
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
