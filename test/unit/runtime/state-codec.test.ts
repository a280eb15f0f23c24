/**
 * The stored form of component state: a keyframe plus XOR+deflate deltas rebuilds exactly the live image, a delta
 * is far smaller than the raw pages it replaces, and damaged or reordered blobs are refused with typed errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import { instantiate, pageBytes, type ComponentInstance, type LoadedComponent, type StateImage } from '../../../src/core/runtime/index.ts';
import { deflateSync, inflateSync } from 'fflate';
import { decodeChain, encodeDelta, encodeKeyframe, fingerprint } from '../../../src/core/runtime/state-codec.ts';
import { decodeMsgpack, encodeCanonical } from '../../../src/core/session/index.ts';
import { builtFixture } from '../../support/runtime-fixtures.ts';

let tally: LoadedComponent;

beforeAll(async () => {
  tally = await loadBuiltComponent(await builtFixture('tally'));
}, 240_000);

const call = (instance: ComponentInstance, i: number) =>
  (instance.exports.invoke as (a: string) => string)(JSON.stringify({ op: 'add', title: `entry ${i}`, body: `body ${i} `.repeat(1 + (i % 7)) }));

function expectSameImage(a: StateImage, b: StateImage): void {
  expect(a.component).toBe(b.component);
  expect(a.globals).toEqual(b.globals);
  expect(a.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((x, y) => x - y)])).toEqual(b.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((x, y) => x - y)]));
  for (const [m, memory] of b.memories.entries()) for (const [i, page] of memory.pages) expect(Buffer.compare(a.memories[m]!.pages.get(i)!, page)).toBe(0);
}

describe('state codec', () => {
  it('keyframe + deltas rebuild the live image exactly; deltas are a small fraction of the raw changed pages', async () => {
    const instance = await instantiate(tally, {});
    const chain = [encodeKeyframe(instance.capture(), instance.initial, 'k1')];
    let raw = 0;
    let encoded = 0;
    for (let i = 1; i <= 20; i++) {
      call(instance, i);
      const delta = instance.checkpoint();
      raw += pageBytes(delta);
      const blob = encodeDelta(delta, 'k1', i);
      encoded += blob.length;
      chain.push(blob);
    }
    expectSameImage(decodeChain(chain, instance.initial), instance.capture());
    expect(raw).toBeGreaterThan(0);
    expect(encoded * 10).toBeLessThan(raw);
    // A fresh instance restored from the decoded chain continues like the original.
    const resumed = await instantiate(tally, {});
    resumed.restore(decodeChain(chain, resumed.initial));
    expect(call(resumed, 21)).toBe(call(instance, 21));
  });

  it('refuses chains out of order, from another keyframe, or damaged', async () => {
    const instance = await instantiate(tally, {});
    const key = encodeKeyframe(instance.capture(), instance.initial, 'k1');
    call(instance, 1);
    const d1 = encodeDelta(instance.checkpoint(), 'k1', 1);
    call(instance, 2);
    const d2 = encodeDelta(instance.checkpoint(), 'k1', 2);
    const refused = (blobs: Uint8Array[]) => expect(() => decodeChain(blobs, instance.initial)).toThrow(expect.objectContaining({ code: 'runtime/bad-state' }));
    refused([key, d2, d1]);
    refused([d1]);
    refused([encodeKeyframe(instance.capture(), instance.initial, 'k2'), d1]);
    refused([key.subarray(0, key.length - 7)]);
    refused([encodeCanonical({ f: 'ferry-state', v: 2 })]);
    // A page in an unknown mode; a run that reaches past its page.
    const target = instance.initial.memories.findIndex((m) => m.byteLength > 0);
    const blob = (mode: number, body: Uint8Array) => encodeCanonical({ f: 'ferry-state', v: 1, kind: 'key', component: instance.component.id, chain: 'k', seq: 0, base: fingerprint(instance.initial), memories: instance.initial.memories.map((m, i) => ({ key: m.key, size: m.byteLength, pages: i === target ? [[0, mode, body]] : [] })), globals: [] });
    refused([blob(1, deflateSync(new Uint8Array(8)))]);
    refused([blob(3, deflateSync(new Uint8Array(new Uint32Array([1, 65532, 8, 7, 7]).buffer)))]);
    refused([blob(3, deflateSync(new Uint8Array(new Uint32Array([1, 0, 8, 7]).buffer)))]);
    expect(() => decodeChain([blob(3, deflateSync(new Uint8Array(new Uint32Array([1, 0, 8, 7, 7]).buffer)))], instance.initial)).not.toThrow();
    // A keyframe taken against another fresh image.
    const other = { ...instance.initial, memories: instance.initial.memories.map((m) => ({ ...m, pages: new Map([...m.pages].slice(1)) })) };
    expect(() => decodeChain([key], other)).toThrow(expect.objectContaining({ code: 'runtime/base-mismatch' }));
    // A page index outside its memory.
    refused([encodeCanonical({ f: 'ferry-state', v: 1, kind: 'key', component: 'x', chain: 'k', seq: 0, memories: [{ key: '0:memory', size: 65536, pages: [[1, 0, null]] }], globals: [] })]);
    // Version 2: the runs stream must hold exactly what the pages say, and be there exactly when a page has runs.
    const withRuns = (change: (blob: Record<string, unknown>) => void) => {
      const blob = decodeMsgpack(d1, 'runtime/bad-state', 'test') as Record<string, unknown>;
      change(blob);
      return encodeCanonical(blob);
    };
    const runsOf = (blob: Uint8Array) => (decodeMsgpack(blob, 'runtime/bad-state', 'test') as { runs: Uint8Array }).runs;
    refused([key, withRuns((b) => delete b.runs)]);
    refused([key, withRuns((b) => (b.runs = deflateSync(new Uint8Array(inflateSync(runsOf(d1)).length + 4))))]);
    refused([key, withRuns((b) => (b.runs = deflateSync(inflateSync(runsOf(d1)).subarray(4))))]);
    refused([key, withRuns((b) => (b.runs = new Uint8Array([1, 2, 3])))]);
    refused([key, withRuns((b) => ((b.memories as { pages: unknown[][] }[]).find((m) => m.pages.length > 0)!.pages[0]![2] = 6))]);
    // Pages that claim far more runs than a stream that small can hold.
    refused([key, withRuns((b) => ((b.memories as { pages: unknown[][] }[]).forEach((m) => m.pages.forEach((p) => p[1] === 3 && (p[2] = 131_140))), (b.runs = deflateSync(new Uint8Array(8)))))]);
    expectSameImage(decodeChain([key, withRuns(() => undefined), d2], instance.initial), decodeChain([key, d1, d2], instance.initial));
    expectSameImage(decodeChain([key, d1, d2], instance.initial), instance.capture());
  });

  it('reads version 1 blobs (each page deflated on its own), alone and in a chain that goes on in version 2', async () => {
    const instance = await instantiate(tally, {});
    for (let i = 1; i <= 3; i++) call(instance, i);
    const key = encodeKeyframe(instance.capture(), instance.initial, 'k1');
    const deltas: Uint8Array[] = [];
    for (let i = 1; i <= 4; i++) {
      call(instance, 10 + i);
      deltas.push(encodeDelta(instance.checkpoint(), 'k1', i));
    }
    const live = instance.capture();
    const v2 = [key, ...deltas];
    const v1 = v2.map(asVersion1);
    expect(v1.map((b) => (decodeMsgpack(b, 'runtime/bad-state', 'test') as { v: number }).v)).toEqual([1, 1, 1, 1, 1]);
    expectSameImage(decodeChain(v1, instance.initial), live);
    // A session checkpointed before: its chain goes on with new deltas after an update.
    expectSameImage(decodeChain([...v1.slice(0, 3), ...v2.slice(3)], instance.initial), live);
    const resumed = await instantiate(tally, {});
    resumed.restore(decodeChain(v1, resumed.initial));
    expect(call(resumed, 99)).toBe(call(instance, 99));
  });
});

/** A version 2 blob as the version 1 encoder wrote it: no `runs` stream, each page's runs body deflated on its own. */
function asVersion1(bytes: Uint8Array): Uint8Array {
  const blob = decodeMsgpack(bytes, 'runtime/bad-state', 'test') as { v: number; runs?: Uint8Array; memories: { pages: [number, number, number | Uint8Array | null][] }[] };
  const runs = blob.runs ? inflateSync(blob.runs) : new Uint8Array(0);
  let at = 0;
  for (const m of blob.memories) {
    for (const page of m.pages) {
      const length = page[2];
      if (typeof length !== 'number') continue;
      page[2] = deflateSync(runs.subarray(at, at + length), { level: 1 });
      at += length;
    }
  }
  delete blob.runs;
  blob.v = 1;
  return encodeCanonical(blob);
}
