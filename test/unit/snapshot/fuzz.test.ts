/**
 * Bad input: ≥10,000 mutated `.ferry` bundles. Each must fail with a typed FerryError (or, for the one family
 * that re-checksums random payload flips, import a session that verifies), never crash or hang, never leave
 * anything in the store, and keep memory bounded.
 */
import { expect, it } from 'vitest';
import { FerryError } from '../../../src/core/errors.ts';
import { PAGE_SIZE, Session, decodeMsgpack, encodeCanonical } from '../../../src/core/session/index.ts';
import { decodeContainer, encodeContainer, exportSession, importSession, verifySessions } from '../../../src/core/snapshot/index.ts';
import { MemoryBackend, ContentStore, createMemoryStore, objectId, type StoreBackend } from '../../../src/core/store/index.ts';
import { chatStep, patternImage, testLlm } from '../../support/session-fixtures.ts';

const ITERATIONS = 10_000;
const LIMITS = { maxPayload: 1 << 20 };

interface Bundle {
  v: number;
  session: string;
  refs: [string, string][];
  objects: Uint8Array[];
}

async function baseBundle(): Promise<Uint8Array> {
  const store = createMemoryStore();
  // Two elided zero pages and one short page: every object kind, a few KB in all, so 10,000 rounds stay fast.
  const image = new Uint8Array(2 * PAGE_SIZE + 1000);
  image.set(patternImage(300, 1), 2 * PAGE_SIZE + 10);
  const s = await Session.create(store, { llm: testLlm, components: { vm: image }, now: 1 });
  const a = await s.append(chatStep(1));
  const changed = image.slice();
  changed.set(patternImage(200, 2), 2 * PAGE_SIZE + 500);
  await s.append(chatStep(2, { vm: changed }));
  await s.fork(a, 'side', 3);
  return exportSession(store, s.id);
}

/** Counts commits reaching the backend: an import that fails must not reach it at all. */
class CountingBackend extends MemoryBackend {
  commits = 0;
  override commit(...args: Parameters<StoreBackend['commit']>): Promise<void> {
    this.commits++;
    return super.commit(...args);
  }
}

/** Seeded xorshift32, so a failure names a reproducible iteration. */
class Rng {
  constructor(private state: number) {}
  nextInt(min: number, max: number): number {
    this.state ^= this.state << 13;
    this.state ^= this.state >>> 17;
    this.state ^= this.state << 5;
    return min + ((this.state >>> 0) % (max - min + 1));
  }
}

type Mutation = (base: Uint8Array, bundle: Bundle, rng: Rng) => Promise<{ bytes: Uint8Array; mayImport: boolean }>;

function tryDecode(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v = decodeMsgpack(bytes, 'snapshot/bad-object', 'object');
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const hex64 = (rng: Rng) => Array.from({ length: 64 }, () => '0123456789abcdef'[rng.nextInt(0, 15)]).join('');
const rewrap = async (b: Bundle, mayImport = false) => ({ bytes: await encodeContainer(encodeCanonical(b), { kind: 'bundle' }), mayImport });
const clone = (b: Bundle): Bundle => ({ ...b, refs: b.refs.map(([n, i]) => [n, i]), objects: [...b.objects] });

const mutations: Record<string, Mutation> = {
  truncate: async (base, _b, rng) => ({ bytes: base.slice(0, rng.nextInt(0, base.length - 1)), mayImport: false }),
  bitflips: async (base, _b, rng) => {
    const out = base.slice();
    for (let i = rng.nextInt(1, 8); i > 0; i--) out[rng.nextInt(0, out.length - 1)]! ^= 1 << rng.nextInt(0, 7);
    return { bytes: out, mayImport: false };
  },
  appendGarbage: async (base, _b, rng) => {
    const out = new Uint8Array(base.length + rng.nextInt(1, 64));
    out.set(base);
    return { bytes: out, mayImport: false };
  },
  wrongVersion: async (base, _b, rng) => {
    const out = base.slice();
    out[5] = [0, 2, 3, 255][rng.nextInt(0, 3)]!;
    return { bytes: out, mayImport: false };
  },
  hugeHeaderLength: async (base, _b, rng) => {
    const out = base.slice();
    new DataView(out.buffer).setUint32(6, [0xffffffff, 0x7fffffff, 1025, base.length][rng.nextInt(0, 3)]!);
    return { bytes: out, mayImport: false };
  },
  hugePayloadLength: async (_base, b, rng) => {
    const payload = encodeCanonical(b);
    const honest = await encodeContainer(payload, { kind: 'bundle', compress: false });
    const headerLength = new DataView(honest.buffer).getUint32(6);
    const header = decodeMsgpack(honest.subarray(10, 10 + headerLength), 'snapshot/bad-bundle', 'header') as Record<string, unknown>;
    header.length = [2 ** 32, 2 ** 40, (1 << 20) + 1, 1 << 19][rng.nextInt(0, 3)];
    const newHeader = encodeCanonical(header);
    const out = new Uint8Array(10 + newHeader.length + payload.length);
    out.set(honest.subarray(0, 6));
    new DataView(out.buffer).setUint32(6, newHeader.length);
    out.set(newHeader, 10);
    out.set(payload, 10 + newHeader.length);
    return { bytes: out, mayImport: false };
  },
  hugeMsgpackLength: async (_base, b, rng) => {
    const payload = encodeCanonical(b);
    const at = rng.nextInt(0, payload.length - 6);
    const out = payload.slice();
    out.set([[0xdd, 0xff, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xf0], [0xdb, 0x7f, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff]][rng.nextInt(0, 3)]!, at);
    return { bytes: await encodeContainer(out, { kind: 'bundle' }), mayImport: false };
  },
  danglingRef: async (_base, b, rng) => {
    const m = clone(b);
    m.refs[rng.nextInt(0, m.refs.length - 1)]![1] = hex64(rng);
    return rewrap(m);
  },
  dropObject: async (_base, b, rng) => {
    const m = clone(b);
    m.objects.splice(rng.nextInt(0, m.objects.length - 1), 1);
    return rewrap(m);
  },
  duplicateObject: async (_base, b, rng) => {
    const m = clone(b);
    m.objects.push(m.objects[rng.nextInt(0, m.objects.length - 1)]!);
    return rewrap(m);
  },
  unreachableObject: async (_base, b, rng) => {
    const m = clone(b);
    m.objects.push(Uint8Array.from({ length: rng.nextInt(1, 100) }, () => rng.nextInt(0, 255)));
    return rewrap(m);
  },
  cycle: async (_base, b, rng) => {
    // Make a checkpoint its own parent, or its child's child. Content addressing turns the attempt into a missing
    // id (the rewritten checkpoint gets a new id, so what referred to the old one dangles), which import refuses.
    const m = clone(b);
    const ids = await Promise.all(m.objects.map((o) => objectId(o)));
    const checkpoints = m.objects
      .map((bytes, i) => ({ i, value: tryDecode(bytes) }))
      .filter((o): o is { i: number; value: Record<string, unknown> } => o.value?.k === 'checkpoint');
    const victim = checkpoints[rng.nextInt(0, checkpoints.length - 1)]!;
    const child = checkpoints.find((c) => c.value.parent === ids[victim.i]);
    victim.value.parent = child ? ids[child.i] : ids[victim.i];
    m.objects[victim.i] = encodeCanonical(victim.value);
    return rewrap(m);
  },
  foreignRef: async (_base, b, rng) => {
    const m = clone(b);
    const r = m.refs[rng.nextInt(0, m.refs.length - 1)]!;
    r[0] = [`sessions/${'0'.repeat(32)}/head`, 'refs/other', `sessions/${m.session}/branches/../x`, `sessions/${m.session}/tags/x`][rng.nextInt(0, 3)]!;
    return rewrap(m);
  },
  badFieldTypes: async (_base, b, rng) => {
    const m = clone(b) as unknown as Record<string, unknown>;
    const key = ['v', 'session', 'refs', 'objects'][rng.nextInt(0, 3)]!;
    m[key] = [null, 7, 'x', [1, 2], { a: 1 }, -1.5][rng.nextInt(0, 5)];
    return { bytes: await encodeContainer(encodeCanonical(m), { kind: 'bundle' }), mayImport: false };
  },
  payloadFlipsRechecked: async (_base, b, rng) => {
    const payload = encodeCanonical(b);
    for (let i = rng.nextInt(1, 4); i > 0; i--) payload[rng.nextInt(0, payload.length - 1)]! ^= 1 << rng.nextInt(0, 7);
    return { bytes: await encodeContainer(payload, { kind: 'bundle' }), mayImport: true };
  },
};

it(`refuses ${ITERATIONS} mutated bundles with typed errors, importing nothing`, async () => {
  const base = await baseBundle();
  const bundle = decodeMsgpack(await decodeContainer(base, { kind: 'bundle' }), 'snapshot/bad-bundle', 'bundle') as Bundle;
  const names = Object.keys(mutations);
  const rng = new Rng(20251122);
  const codes = new Map<string, number>();
  let imported = 0;
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  for (let i = 0; i < ITERATIONS; i++) {
    const family = names[i % names.length]!;
    const { bytes, mayImport } = await mutations[family]!(base, bundle, rng);
    const backend = new CountingBackend();
    const store = new ContentStore(backend);
    const outcome = await importSession(store, bytes, { limits: LIMITS }).then(() => undefined, (err: unknown) => err);
    if (outcome === undefined) {
      expect(mayImport, `${family} #${i} imported`).toBe(true);
      expect(await verifySessions(store)).toBeGreaterThan(0);
      imported++;
    } else {
      if (!(outcome instanceof FerryError)) throw new Error(`${family} #${i}: untyped error ${String(outcome)}`, { cause: outcome });
      codes.set(outcome.code, (codes.get(outcome.code) ?? 0) + 1);
      expect(backend.commits, `${family} #${i} wrote before failing`).toBe(0);
      expect(await store.listRefs()).toEqual([]);
    }
  }
  const rssGrowth = process.memoryUsage().rss - rssBefore;
  console.log(`fuzz: ${ITERATIONS} bundles in ${Math.round(performance.now() - started)} ms; imported ${imported} (re-checksummed flips only); codes`, Object.fromEntries(codes));
  expect(rssGrowth).toBeLessThan(256 << 20);
  expect(codes.size).toBeGreaterThanOrEqual(8);
}, 120_000);
