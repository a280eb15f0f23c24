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

  it('fingerprints a fresh image by its contents: equal to the last one hashed, the same; one word apart, another', async () => {
    const [a, b] = [await instantiate(tally, {}), await instantiate(tally, {})];
    expect(fingerprint(b.initial)).toBe(fingerprint(a.initial));
    const memory = a.initial.memories.find((m) => m.pages.size > 0)!;
    const [index, page] = [...memory.pages].at(-1)!;
    const changed = page.slice();
    changed[changed.length - 4]! ^= 1;
    const other: StateImage = { ...a.initial, memories: a.initial.memories.map((m) => m === memory ? { ...m, pages: new Map([...m.pages, [index, changed]]) } : m) };
    expect(fingerprint(other)).not.toBe(fingerprint(a.initial));
    // And a keyframe taken against the fresh image does not land on that one.
    expect(() => decodeChain([encodeKeyframe(a.capture(), a.initial, 'k')], other)).toThrow(expect.objectContaining({ code: 'runtime/base-mismatch' }));
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
    // Versions 2 and 3: the runs must hold exactly what the pages say, and be there, in one field, exactly when a page
    // has runs (version 3 keeps small ones as they are, larger ones in `deflated`).
    const withRuns = (bytes: Uint8Array, change: (blob: Record<string, unknown>) => void) => {
      const blob = decodeMsgpack(bytes, 'runtime/bad-state', 'test') as Record<string, unknown>;
      change(blob);
      return encodeCanonical(blob);
    };
    const plain = plainRuns(decodeMsgpack(d1, 'runtime/bad-state', 'test') as { runs?: Uint8Array });
    // A step's runs are kept as they are; a keyframe of much state deflates them.
    expect((decodeMsgpack(d1, 'runtime/bad-state', 'test') as { runs?: Uint8Array }).runs).toEqual(plain);
    const busy = await instantiate(tally, {});
    for (let i = 0; i < 1500; i++) call(busy, i);
    const bigKey = encodeKeyframe(busy.capture(), busy.initial, 'kb');
    const big = decodeMsgpack(bigKey, 'runtime/bad-state', 'test') as { runs?: Uint8Array; deflated?: Uint8Array };
    expect(big.runs).toBeUndefined();
    expect(inflateSync(big.deflated!).length).toBeGreaterThan(65536);
    expectSameImage(decodeChain([bigKey], busy.initial), busy.capture());
    const v2 = asVersion2(d1);
    for (const [d, field, pack] of [[d1, 'runs', (b: Uint8Array) => b], [v2, 'runs', (b: Uint8Array) => deflateSync(b)], [d1, 'deflated', (b: Uint8Array) => deflateSync(b)]] as const) {
      const put = (runs: Uint8Array) => (b: Record<string, unknown>) => {
        delete b.runs;
        b[field] = pack(runs);
      };
      refused([key, withRuns(d, (b) => delete b.runs)]);
      refused([key, withRuns(d, put(new Uint8Array(plain.length + 4)))]);
      refused([key, withRuns(d, put(plain.subarray(4)))]);
      refused([key, withRuns(d, (b) => ((b.memories as { pages: unknown[][] }[]).find((m) => m.pages.length > 0)!.pages[0]![2] = 6))]);
      expectSameImage(decodeChain([key, withRuns(d, put(plain)), d2], instance.initial), decodeChain([key, d1, d2], instance.initial));
    }
    refused([key, withRuns(v2, (b) => (b.runs = new Uint8Array([1, 2, 3])))]);
    // Two streams, or a version 2 blob with a version 3 field.
    refused([key, withRuns(d1, (b) => (b.deflated = deflateSync(plain)))]);
    refused([key, withRuns(v2, (b) => ((b.deflated = b.runs), delete b.runs))]);
    // Pages that claim far more runs than a stream that small can hold.
    refused([key, withRuns(v2, (b) => ((b.memories as { pages: unknown[][] }[]).forEach((m) => m.pages.forEach((p) => p[1] === 3 && (p[2] = 131_140))), (b.runs = deflateSync(new Uint8Array(8)))))]);
    expectSameImage(decodeChain([key, d1, d2], instance.initial), instance.capture());
  });

  it('reads version 1 and 2 blobs (each page deflated on its own; all runs deflated), alone and in a chain that goes on in version 3', async () => {
    const instance = await instantiate(tally, {});
    for (let i = 1; i <= 3; i++) call(instance, i);
    const key = encodeKeyframe(instance.capture(), instance.initial, 'k1');
    const deltas: Uint8Array[] = [];
    for (let i = 1; i <= 4; i++) {
      call(instance, 10 + i);
      deltas.push(encodeDelta(instance.checkpoint(), 'k1', i));
    }
    const live = instance.capture();
    const v3 = [key, ...deltas];
    const [v1, v2] = [v3.map(asVersion1), v3.map(asVersion2)];
    const versions = (chain: Uint8Array[]) => chain.map((b) => (decodeMsgpack(b, 'runtime/bad-state', 'test') as { v: number }).v);
    expect([versions(v1), versions(v2), versions(v3)]).toEqual([[1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [3, 3, 3, 3, 3]]);
    expectSameImage(decodeChain(v1, instance.initial), live);
    expectSameImage(decodeChain(v2, instance.initial), live);
    // A session checkpointed before: its chain goes on with new deltas after an update.
    expectSameImage(decodeChain([...v1.slice(0, 2), ...v2.slice(2, 3), ...v3.slice(3)], instance.initial), live);
    const resumed = await instantiate(tally, {});
    resumed.restore(decodeChain(v1, resumed.initial));
    expect(call(resumed, 99)).toBe(call(instance, 99));
  });
});

/** A version 2 blob as the version 1 encoder wrote it: no `runs` stream, each page's runs body deflated on its own. */
/** A version 3 blob's runs as they are (inflated where it keeps them deflated). */
function plainRuns(blob: { runs?: Uint8Array; deflated?: Uint8Array }): Uint8Array {
  return blob.deflated ? inflateSync(blob.deflated) : (blob.runs ?? new Uint8Array(0));
}

/** The same blob as version 2 wrote it: its runs always deflated, in `runs`. */
function asVersion2(bytes: Uint8Array): Uint8Array {
  const blob = decodeMsgpack(bytes, 'runtime/bad-state', 'test') as { v: number; runs?: Uint8Array; deflated?: Uint8Array };
  if (blob.runs || blob.deflated) blob.runs = deflateSync(plainRuns(blob), { level: 1 });
  delete blob.deflated;
  blob.v = 2;
  return encodeCanonical(blob);
}

function asVersion1(bytes: Uint8Array): Uint8Array {
  const blob = decodeMsgpack(bytes, 'runtime/bad-state', 'test') as { v: number; runs?: Uint8Array; deflated?: Uint8Array; memories: { pages: [number, number, number | Uint8Array | null][] }[] };
  const runs = plainRuns(blob);
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
  delete blob.deflated;
  blob.v = 1;
  return encodeCanonical(blob);
}
