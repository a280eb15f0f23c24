/** Served by bench/runtime.ts: hands the components and state chains to a Web Worker that times restore there. */
import type { BenchInput, BenchResult } from './worker.ts';

function run(input: BenchInput): Promise<BenchResult> {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  return new Promise<BenchResult>((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<BenchResult | { error: string }>) => {
      worker.terminate();
      if ('error' in e.data) reject(new Error(e.data.error));
      else resolve(e.data);
    };
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage(input);
  });
}

(globalThis as unknown as { ferryRuntimeBench: typeof run }).ferryRuntimeBench = run;
document.title = 'ready';
