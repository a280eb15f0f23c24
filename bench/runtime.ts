/**
 * Component runtime benchmarks (issue 4), on the real `notes` tool (QuickJS): a page-diff checkpoint after every
 * call against compressing the whole memory image each call, and restore into a fresh instance against a plain
 * fresh instantiate. Node only for now; `restore_ms_browser` and `step_overhead_ms` come with the action loop.
 */
import { zlibSync } from 'fflate';
import { loadBuiltComponent } from '../server/runtime/node-components.ts';
import { applyDelta, instantiate, pageBytes, type ComponentInstance, type StateDelta, type StateImage } from '../src/core/runtime/index.ts';
import { builtNotes } from '../test/support/components.ts';
import { invokeOf, notesCalls, runCalls } from '../test/support/notes-workload.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const CALLS = 120;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * The same delta encoded two ways a page store could: each changed page zlib-compressed, and each changed page
 * XORed with its previous version then compressed (mostly zeros: a step changes a few hundred bytes).
 */
function encodedDeltaBytes(delta: StateDelta, previous: StateImage): { zlib: number; xorZlib: number } {
  let zlib = 0;
  let xorZlib = 0;
  delta.memories.forEach((memory, m) => {
    for (const [i, page] of memory.pages) {
      if (page === null) continue;
      const before = previous.memories[m]!.pages.get(i);
      const xor = page.slice();
      if (before) for (let j = 0; j < xor.length; j++) xor[j]! ^= before[j]!;
      zlib += zlibSync(page, { level: 1 }).length;
      xorZlib += zlibSync(xor, { level: 1 }).length;
    }
  });
  return { zlib, xorZlib };
}

/** The baseline: every memory copied whole and zlib-compressed (fflate, level 1), as a whole-image dump would. */
function fullImage(instance: ComponentInstance): number {
  let bytes = 0;
  for (const memory of instance.capture().memories) {
    const whole = new Uint8Array(memory.byteLength);
    for (const [i, page] of memory.pages) whole.set(page, i * page.length);
    bytes += zlibSync(whole, { level: 1 }).length;
  }
  return bytes;
}

export const runtimeSuite: Suite = {
  name: 'runtime',
  description: `notes tool (QuickJS component): per-call checkpoint vs whole-image compression over ${CALLS} calls; restore vs instantiate`,
  async run(): Promise<Figures> {
    const notes = await loadBuiltComponent(await builtNotes());
    const calls = notesCalls(0, CALLS);

    const diffed = await instantiate(notes, {});
    const whole = await instantiate(notes, {});
    const checkpointMs: number[] = [];
    const checkpointBytes: number[] = [];
    const zlibBytes: number[] = [];
    const xorZlibBytes: number[] = [];
    let previous = diffed.capture();
    const fullMs: number[] = [];
    const fullBytes: number[] = [];
    for (const call of calls) {
      runCalls(invokeOf(diffed.exports), [call]);
      let t0 = performance.now();
      const delta = diffed.checkpoint();
      checkpointMs.push(performance.now() - t0);
      checkpointBytes.push(pageBytes(delta));
      const encoded = encodedDeltaBytes(delta, previous);
      zlibBytes.push(encoded.zlib);
      xorZlibBytes.push(encoded.xorZlib);
      previous = applyDelta(previous, delta);

      runCalls(invokeOf(whole.exports), [call]);
      t0 = performance.now();
      fullBytes.push(fullImage(whole));
      fullMs.push(performance.now() - t0);
    }

    // Restore = fresh instantiate + write the image; measured interleaved with plain instantiates so both see the
    // same heap and GC pressure.
    const image = diffed.capture();
    const instantiateMs: number[] = [];
    const restoreMs: number[] = [];
    for (let i = 0; i < 13; i++) {
      let t0 = performance.now();
      await instantiate(notes, {});
      instantiateMs.push(performance.now() - t0);
      t0 = performance.now();
      (await instantiate(notes, {})).restore(image);
      restoreMs.push(performance.now() - t0);
    }
    const memoryBytes = image.memories.reduce((n, m) => n + m.byteLength, 0);

    return {
      checkpoint_ms: compared(median(checkpointMs), 'ms', 'full_image_ms', median(fullMs)),
      full_image_ms: { value: median(fullMs), unit: 'ms' },
      checkpoint_bytes: compared(median(checkpointBytes), 'bytes', 'full_image_bytes', median(fullBytes)),
      full_image_bytes: { value: median(fullBytes), unit: 'bytes' },
      checkpoint_zlib_bytes: compared(median(zlibBytes), 'bytes', 'full_image_bytes', median(fullBytes)),
      checkpoint_xor_zlib_bytes: compared(median(xorZlibBytes), 'bytes', 'full_image_bytes', median(fullBytes)),
      memory_bytes: { value: memoryBytes, unit: 'bytes' },
      restore_ms: compared(median(restoreMs), 'ms', 'instantiate_ms', median(instantiateMs)),
      instantiate_ms: { value: median(instantiateMs), unit: 'ms' },
    };
  },
};
