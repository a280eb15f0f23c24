/**
 * A browser engine's prefill and decode speed in headless Chromium, through the same Engine the app uses and in a Web
 * Worker as the app runs it (src/browser/llm/throughput.ts), for a model file on disk, and its decode speed under a
 * grammar, on a page served cross-origin isolated as the app is (so the CPU engine can run threads). bench/llm.ts
 * compares these with node-llama-cpp on the same file, the CPU engine on two threads with one, and wllama 3 with the
 * CPU engine.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import type { GrammarOverhead, GrammarOverheadOptions, KvResume, KvResumeOptions, ThroughputOptions, Throughput } from '../src/browser/llm/throughput.ts';

const pageRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), 'llm-wasm');

interface PageMeasures {
  ferryWasmThroughput(options: ThroughputOptions): Promise<Throughput>;
  ferryWasmGrammar(options: GrammarOverheadOptions): Promise<GrammarOverhead>;
  ferryWasmKvResume(options: KvResumeOptions): Promise<KvResume>;
}

/** Runs one of the page's measures on the model file at `modelPath`, in a fresh Chromium. */
async function inPage<K extends keyof PageMeasures>(modelPath: string, measure: K, options: Omit<Parameters<PageMeasures[K]>[0], 'modelUrl'>, files: Record<string, string> = {}): Promise<Awaited<ReturnType<PageMeasures[K]>>> {
  // The page fetches /model.gguf (and any other `files`), streamed from disk by its server, so any file can be measured.
  const chrome = await openChromiumPage(pageRoot, { files: { '/model.gguf': modelPath, ...files }, isolated: true });
  try {
    await chrome.load();
    return (await chrome.page.evaluate(
      ([name, o]) => (globalThis as unknown as Record<string, (o: unknown) => Promise<unknown>>)[name]!(o),
      [measure, { ...options, modelUrl: '/model.gguf' }] as const,
    )) as Awaited<ReturnType<PageMeasures[K]>>;
  } finally {
    await chrome.close();
  }
}

export async function measureWasmThroughput(options: { modelPath: string } & Omit<ThroughputOptions, 'modelUrl'>): Promise<{ prefillTps: number; decodeTps: number; device: string }> {
  const { modelPath, ...rest } = options;
  const result = await inPage(modelPath, 'ferryWasmThroughput', rest);
  return { prefillTps: result.prefillTps, decodeTps: result.decodeTps, device: result.device };
}

/** The CPU engine resuming from the KV state in the file at `statePath` (saved by node-llama-cpp), against a re-prefill. */
export function measureWasmKvResume(options: { modelPath: string; statePath: string } & Omit<KvResumeOptions, 'modelUrl' | 'stateUrl'>): Promise<KvResume> {
  const { modelPath, statePath, ...rest } = options;
  return inPage(modelPath, 'ferryWasmKvResume', { ...rest, stateUrl: '/kv.state' }, { '/kv.state': statePath });
}

/** The CPU engine's decode tokens/s under `grammar` and freely, medians over `runs` prompts. */
export function measureWasmGrammar(options: { modelPath: string } & Omit<GrammarOverheadOptions, 'modelUrl'>): Promise<GrammarOverhead> {
  const { modelPath, ...rest } = options;
  return inPage(modelPath, 'ferryWasmGrammar', rest);
}
