/**
 * Transparent checkpointing of a real QuickJS component (`notes`): capture after N calls, restore into a fresh
 * instance — here and in another process — and continue exactly as an uninterrupted run; deltas carry few pages.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import { applyDelta, instantiate, pageBytes, PAGE_SIZE, type LoadedComponent, type StateImage } from '../../../src/core/runtime/index.ts';
import { decodeChain, encodeKeyframe } from '../../../src/core/runtime/state-codec.ts';
import { builtNotes } from '../../support/components.ts';
import { invokeOf, notesCalls, runCalls } from '../../support/notes-workload.ts';
import { imageToJson } from '../../support/state-image-json.ts';

/** A cold build of the component (first run after a source change) takes 5–40 s on the 2-core build machines. */
const BUILD_TIMEOUT = 180_000;
const N = 30;
const M = 30;
let dir: string;
let notes: LoadedComponent;
/** An uninterrupted run of N + M calls. */
let reference: string[];

beforeAll(async () => {
  dir = await builtNotes();
  notes = await loadBuiltComponent(dir);
  const instance = await instantiate(notes, {});
  reference = runCalls(invokeOf(instance.exports), notesCalls(0, N + M));
  // The workload must exercise both result cases, or equality below would prove less than it claims.
  expect(reference.some((r) => r.startsWith('err '))).toBe(true);
  expect(reference.filter((r) => r.startsWith('ok ')).length).toBeGreaterThan(N);
}, BUILD_TIMEOUT);

async function imageAfter(calls: number): Promise<StateImage> {
  const instance = await instantiate(notes, {});
  expect(runCalls(invokeOf(instance.exports), notesCalls(0, calls))).toEqual(reference.slice(0, calls));
  return instance.capture();
}

describe('component state capture and restore', () => {
  it('a fresh instance restored from the image continues exactly like the uninterrupted run', async () => {
    const image = await imageAfter(N);
    const resumed = await instantiate(notes, {});
    resumed.restore(image);
    expect(runCalls(invokeOf(resumed.exports), notesCalls(N, N + M))).toEqual(reference.slice(N));
  });

  it('an instance holding other state is restored exactly: a page is skipped only where it already holds the image', async () => {
    const source = await instantiate(notes, {});
    runCalls(invokeOf(source.exports), notesCalls(0, N));
    const target = await instantiate(notes, {});
    // It has run: its memories are read to find what to write.
    runCalls(invokeOf(target.exports), notesCalls(0, 1));
    const image = decodeChain([encodeKeyframe(source.capture(), source.initial, 'k')], target.initial);
    // Put the target into other state where the restore could go wrong: a page the image shares with the fresh
    // state (compared before it is skipped) and a page the image does not hold (zeroed) both hold other bytes.
    const [memory, m] = [image.memories.findIndex((x) => x.byteLength > 0)].map((i) => [image.memories[i]!, i] as const)[0]!;
    const shared = [...memory.pages].find(([i, page]) => target.initial.memories[m]!.pages.get(i) === page)![0];
    const absent = [...Array(memory.byteLength / PAGE_SIZE).keys()].find((i) => !memory.pages.has(i))!;
    const scribbled = (i: number) => new Uint8Array(PAGE_SIZE).fill(7 + i);
    const other: StateImage = {
      ...target.initial,
      memories: target.initial.memories.map((x, j) => j === m ? { ...x, byteLength: memory.byteLength, pages: new Map([...x.pages, [shared, scribbled(1)], [absent, scribbled(2)]]) } : x),
    };
    target.restore(other);
    target.restore(image);
    const restored = target.capture().memories[m]!;
    expect(Buffer.compare(restored.pages.get(shared)!, memory.pages.get(shared)!)).toBe(0);
    expect(restored.pages.has(absent)).toBe(false);
    expect(runCalls(invokeOf(target.exports), notesCalls(N, N + M))).toEqual(reference.slice(N));
  });

  it('an instance that has not run is restored exactly without reading its memories, twice in a row too', async () => {
    const image = await imageAfter(N);
    const target = await instantiate(notes, {});
    target.restore(await imageAfter(N + M));
    target.restore(image);
    expect(sameMemories(target.capture(), image)).toBe(true);
    expect(runCalls(invokeOf(target.exports), notesCalls(N, N + M))).toEqual(reference.slice(N));
  });

  it('a call into an instance, however its exports are reached, makes the next restore read its memories', async () => {
    const target = await instantiate(notes, {});
    const { exports } = target;
    runCalls(invokeOf(exports), notesCalls(0, 1));
    // Its fresh image: every page of it is the instance's own, so a restore trusting it would write nothing.
    target.restore(target.initial);
    expect(sameMemories(target.capture(), target.initial)).toBe(true);
    expect(runCalls(invokeOf(target.exports), notesCalls(0, N))).toEqual(reference.slice(0, N));
  });

  it('without the restore, a fresh instance does not continue the same way (the test can fail)', async () => {
    const fresh = await instantiate(notes, {});
    expect(runCalls(invokeOf(fresh.exports), notesCalls(N, N + M))).not.toEqual(reference.slice(N));
  });

  it('restores in another process (a child node) with the same continuation', async () => {
    const image = await imageAfter(N);
    const child = path.join(import.meta.dirname, '..', '..', 'support', 'runtime-child.ts');
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', child], { maxBuffer: 64 * 1024 * 1024 });
    run.child.stdin!.end(JSON.stringify({ dir, image: imageToJson(image), calls: notesCalls(N, N + M) }));
    const out = JSON.parse((await run).stdout) as { pid: number; results: string[] };
    expect(out.pid).not.toBe(process.pid);
    expect(out.results).toEqual(reference.slice(N));
  });

  it('a small step changes few pages, and the deltas rebuild the full image', async () => {
    const instance = await instantiate(notes, {});
    const invoke = invokeOf(instance.exports);
    const fresh = instance.capture();
    const totalPages = fresh.memories.reduce((n, m) => n + m.byteLength / PAGE_SIZE, 0);
    let image = fresh;
    const calls = notesCalls(0, N);
    for (const call of calls) {
      runCalls(invoke, [call]);
      const delta = instance.checkpoint();
      const changed = delta.memories.reduce((n, m) => n + m.pages.size, 0);
      expect(changed).toBeGreaterThan(0);
      expect(changed).toBeLessThanOrEqual(Math.max(8, totalPages / 4));
      image = applyDelta(image, delta);
    }
    // Deltas applied to the fresh image give exactly what a full capture sees now.
    const now = instance.capture();
    expect(image.globals).toEqual(now.globals);
    expect(image.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((a, b) => a - b)]))
      .toEqual(now.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((a, b) => a - b)]));
    for (const [m, memory] of now.memories.entries()) {
      for (const [i, page] of memory.pages) expect(image.memories[m]!.pages.get(i)!.every((b, j) => b === page[j])).toBe(true);
    }
    // Nothing happened since the capture: an empty delta.
    expect(pageBytes(instance.checkpoint())).toBe(0);
  });

  it('a state that grew its memory restores into a fresh (smaller) instance', async () => {
    const instance = await instantiate(notes, {});
    const invoke = invokeOf(instance.exports);
    const before = instance.capture().memories.reduce((n, m) => n + m.byteLength, 0);
    const big = 'x'.repeat(256 * 1024);
    for (let i = 0; i < 12; i++) invoke(JSON.stringify({ op: 'add', title: `big ${i}`, body: big }));
    const image = instance.capture();
    expect(image.memories.reduce((n, m) => n + m.byteLength, 0)).toBeGreaterThan(before);
    const resumed = await instantiate(notes, {});
    resumed.restore(image);
    const get = (i: string) => runCalls(invokeOf(i === 'a' ? instance.exports : resumed.exports), ['{"op":"get","id":7}', '{"op":"add","title":"after"}']);
    expect(get('b')).toEqual(get('a'));
  });
});

/** Whether two images hold the same bytes in every memory (absent pages are zero). */
function sameMemories(a: StateImage, b: StateImage): boolean {
  return a.memories.every((m, i) => {
    const other = b.memories[i]!;
    if (m.byteLength !== other.byteLength) return false;
    for (let p = 0; p * PAGE_SIZE < m.byteLength; p++) {
      const x = m.pages.get(p) ?? new Uint8Array(PAGE_SIZE);
      const y = other.pages.get(p) ?? new Uint8Array(PAGE_SIZE);
      if (Buffer.compare(x, y) !== 0) return false;
    }
    return true;
  });
}
