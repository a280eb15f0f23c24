/**
 * KV entries are caches (snapshot/kv.ts): a fetcher that says which KV format its engine loads downloads only that
 * format's KV, and only where a resume loads it (at the tips of the refs) — an engine of another format never
 * downloads a node-llama-cpp KV blob (here two formats by name: the entries are opaque bytes to the fetch). A store that holds a session without some of its KV entries still verifies, exports,
 * imports and publishes it; a KV entry that is present must be whole.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RelayHttp, fetchSnapshot, publishSession, type PublishResult } from '../../../src/core/protocol/index.ts';
import { encodeKvEntry } from '../../../src/core/runtime/kv-handoff.ts';
import { PAGE_SIZE, Session, decodeObject, sessionPrefix } from '../../../src/core/session/index.ts';
import { collectClosure, exportSession, importSession, kvComponentName, receiveObjects, verifySessions } from '../../../src/core/snapshot/index.ts';
import { createMemoryStore, type ObjectId, type Store } from '../../../src/core/store/index.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { chatStep, patternImage, testLlm } from '../../support/session-fixtures.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

const NATIVE = kvComponentName('node-llama-cpp');
const WASM = kvComponentName('wllama');

/** A KV entry as the runtime writes it, over `size` bytes of state (high-entropy, like a real cache). */
async function kvEntry(engine: string, size: number, seed: number): Promise<Uint8Array> {
  return encodeKvEntry({ engine, model: 'f'.repeat(64), tokens: Array.from({ length: 64 }, (_, i) => i + 1), bytes: patternImage(size, seed) });
}

/** Response bytes and request paths a RelayHttp moved. */
function meter(): { fetch: typeof fetch; received: () => number; paths: string[] } {
  let received = 0;
  const paths: string[] = [];
  return {
    paths,
    received: () => received,
    fetch: async (input, init) => {
      paths.push(new URL(String(input)).pathname);
      const res = await fetch(input, init);
      const body = new Uint8Array(await res.arrayBuffer());
      received += body.length;
      return new Response(body, { status: res.status, headers: res.headers });
    },
  };
}

/** The chunk-list id and page ids of component `name` at checkpoint `at`. */
async function entryIds(store: Store, at: ObjectId, name: string): Promise<ObjectId[]> {
  const cp = decodeObject('checkpoint', (await store.get(at))!);
  const list = cp.components[name]!;
  const chunks = decodeObject('chunks', (await store.get(list))!);
  return [list, ...chunks.pages.filter((p): p is ObjectId => p !== null)];
}

describe('fetching a snapshot with only the KV this engine can use', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  const device = createMemoryStore();
  let session: Session;
  let published: PublishResult;
  /** The head's native KV (4 pages), an older native KV (3 pages) further back, and the head's wllama KV. */
  const ids: Record<'headNative' | 'oldNative' | 'headWasm', ObjectId[]> = { headNative: [], oldNative: [], headWasm: [] };
  let head: ObjectId;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir });
    session = await Session.create(device, { llm: testLlm, components: { vm: patternImage(2 * PAGE_SIZE, 3) } });
    await session.append(chatStep(0, { [NATIVE]: await kvEntry('node-llama-cpp', 3 * PAGE_SIZE - 100, 5) }));
    const old = await session.head();
    await session.append(chatStep(1));
    await session.append(chatStep(2, { [NATIVE]: await kvEntry('node-llama-cpp', 4 * PAGE_SIZE - 100, 6), [WASM]: await kvEntry('wllama', PAGE_SIZE, 7) }));
    head = await session.head();
    ids.oldNative = await entryIds(device, old, NATIVE);
    ids.headNative = await entryIds(device, head, NATIVE);
    ids.headWasm = await entryIds(device, head, WASM);
    published = await publishSession(device, session.id, new RelayHttp({ baseUrl: relay.url }));
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  async function fetchWith(engine: string | null | undefined): Promise<{ store: Store; received: number; paths: string[]; has: (which: ObjectId[]) => Promise<boolean[]> }> {
    const m = meter();
    const store = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url, fetch: m.fetch }), published.snapshot.id, published.key, store, engine === undefined ? {} : { engine });
    return { store, received: m.received(), paths: m.paths, has: (which) => store.hasMany(which) };
  }

  test('a wllama fetcher gets its own KV at the head and none of node-llama-cpp\'s, in two requests', async () => {
    const all = await fetchWith(undefined);
    const wasm = await fetchWith('wllama');
    expect(await wasm.has(ids.headWasm)).toEqual(ids.headWasm.map(() => true));
    expect(await wasm.has([...ids.headNative, ...ids.oldNative])).toEqual([...ids.headNative, ...ids.oldNative].map(() => false));
    // Seven native KV pages (~450 KB of incompressible state) were never downloaded.
    expect(all.received - wasm.received).toBeGreaterThan(6.5 * PAGE_SIZE);
    // The record, manifest, structure and pages in one answer, then the KV it uses in one more, whatever the depth.
    expect(wasm.paths).toEqual([`/api/v2/snapshots/${published.snapshot.id}/contents`, '/api/v2/objects/fetch']);
    // Everything else is there: the same checkpoints and component state as the device's.
    const opened = await Session.open(wasm.store, session.id);
    expect((await opened.history()).map((h) => h.id)).toEqual((await session.history()).map((h) => h.id));
    expect(await opened.component(head, 'vm')).toEqual(await session.component(head, 'vm'));
    expect(await opened.component(head, WASM)).toEqual(await session.component(head, WASM));
    // The checkpoint still names it (ids are content): reading it says it is not here, and a resume re-prefills.
    await expect(opened.component(head, NATIVE)).rejects.toSatisfy((e) => isFerryError(e, 'store/missing-object'));
  });

  test('a node-llama-cpp fetcher gets only the KV at the tip, not the older one; null gets none; unsaid gets all', async () => {
    const native = await fetchWith('node-llama-cpp');
    expect(await native.has(ids.headNative)).toEqual(ids.headNative.map(() => true));
    expect(await native.has([...ids.oldNative, ...ids.headWasm])).toEqual([...ids.oldNative, ...ids.headWasm].map(() => false));
    const none = await fetchWith(null);
    expect(await none.has([...ids.headNative, ...ids.oldNative, ...ids.headWasm]).then((h) => h.some(Boolean))).toBe(false);
    // The session's own pages come with the record, in one request; no KV page ever does (8 pages of them here).
    expect(none.paths).toEqual([`/api/v2/snapshots/${published.snapshot.id}/contents`]);
    expect(none.received).toBeLessThan(6 * PAGE_SIZE);
    const all = await fetchWith(undefined);
    expect(await all.has([...ids.headNative, ...ids.oldNative, ...ids.headWasm]).then((h) => h.every(Boolean))).toBe(true);
    expect((await collectClosure(all.store, await all.store.listRefs(sessionPrefix(session.id)))).length).toBe(
      (await collectClosure(device, await device.listRefs(sessionPrefix(session.id)))).length,
    );
  });

  test('a session without some of its KV verifies, exports, imports, publishes and fetches again', async () => {
    const { store } = await fetchWith('wllama');
    await expect(verifySessions(store)).resolves.toBeGreaterThan(0);
    const other = createMemoryStore();
    expect(await importSession(other, await exportSession(store, session.id))).toBe(session.id);
    expect(await other.hasMany(ids.headWasm)).toEqual(ids.headWasm.map(() => true));
    // A new snapshot from the pruned copy: the relay never gets the native KV under that key, and readers do without.
    const again = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
    const back = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), again.snapshot.id, again.key, back);
    expect(await back.listRefs(sessionPrefix(session.id))).toEqual(await device.listRefs(sessionPrefix(session.id)));
    expect(await back.has(ids.headNative[0]!)).toBe(false);
  });

  test('a KV entry that arrives must be whole: its list without all its pages is refused', async () => {
    const objects = await collectClosure(device, await device.listRefs(sessionPrefix(session.id)));
    const missingPage = ids.headNative[1]!;
    const refs = (await device.listRefs(sessionPrefix(session.id))).map((r) => ({ name: r.name, expect: null, next: r.id, reason: 'test' }));
    const store = createMemoryStore();
    await expect(receiveObjects(store, objects.filter((o) => o.id !== missingPage), refs)).rejects.toSatisfy((e) => isFerryError(e, 'snapshot/dangling-id'));
    // Without the entry altogether (list and pages), the same session is accepted.
    const withoutNative = new Set([...ids.headNative, ...ids.oldNative]);
    await receiveObjects(store, objects.filter((o) => !withoutNative.has(o.id)), refs);
    await expect(verifySessions(store)).resolves.toBeGreaterThan(0);
    // But a component that is not a KV entry may never be left out.
    const vmList = decodeObject('checkpoint', (await device.get(head))!).components.vm!;
    await expect(receiveObjects(createMemoryStore(), objects.filter((o) => o.id !== vmList), refs)).rejects.toSatisfy((e) => isFerryError(e, 'snapshot/dangling-id'));
  });
});
