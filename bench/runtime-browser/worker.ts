/**
 * In a Chromium Web Worker: restore (decode the chains, fresh instances, write the images) against a plain fresh
 * instantiate of the same components, interleaved; medians back to the page.
 */
import { instantiate, loadComponent, type LoadedComponent } from '../../src/core/runtime/index.ts';
import { decodeChain } from '../../src/core/runtime/state-codec.ts';

export interface BenchInput {
  components: { id: string; files: Record<string, string> }[];
  /** Per component, its keyframe and deltas (base64). */
  chains: string[][];
}

export interface BenchResult {
  instantiateMs: number;
  restoreMs: number;
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function bench(input: BenchInput): Promise<BenchResult> {
  const components: LoadedComponent[] = [];
  for (const c of input.components) {
    components.push(await loadComponent(c.id, { read: async (file) => fromBase64(c.files[file] ?? '') }));
  }
  const chains = input.chains.map((chain) => chain.map(fromBase64));
  const instantiateMs: number[] = [];
  const restoreMs: number[] = [];
  for (let i = 0; i < 25; i++) {
    let t0 = performance.now();
    for (const c of components) await instantiate(c, {});
    instantiateMs.push(performance.now() - t0);
    t0 = performance.now();
    for (const [n, c] of components.entries()) {
      const instance = await instantiate(c, {});
      instance.restore(decodeChain(chains[n]!, instance.initial));
    }
    restoreMs.push(performance.now() - t0);
  }
  return { instantiateMs: median(instantiateMs), restoreMs: median(restoreMs) };
}

self.onmessage = (e: MessageEvent<BenchInput>) => {
  bench(e.data).then(
    (result) => self.postMessage(result),
    (err: unknown) => self.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  );
};
