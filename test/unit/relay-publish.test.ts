/**
 * Publishing sessions to a real relay (in-process, loopback) and fetching them back: the same branches,
 * checkpoints and component state arrive; the relay's files hold no plaintext; a second publish after ten more
 * steps uploads exactly the new objects; a relay restart keeps every snapshot.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { RelayHttp, decodeFrames, fetchSnapshot, paths, publishSession, snapshotPaths, type PublishResult } from '../../src/core/protocol/index.ts';
import { Session, branchRef, sessionPrefix } from '../../src/core/session/index.ts';
import { collectClosure, reachableIds, verifySessions } from '../../src/core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../../src/core/store/index.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { SECRET_TEXT, appendSteps, makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

interface Sent {
  method: string;
  path: string;
  /** Sealed objects in the body (single or batch upload), and their bytes. */
  objects: number;
  objectBytes: number;
}

/** A fetch that records every request it sends, so a test can count uploaded objects and their bytes. */
function recordingFetch(log: Sent[]): typeof fetch {
  return async (input, init) => {
    const url = new URL(String(input));
    const body = init?.body instanceof Uint8Array ? init.body : new Uint8Array();
    const method = init?.method ?? 'GET';
    let objects: { bytes: Uint8Array }[] = [];
    const framed = url.pathname === paths.batch || url.pathname === snapshotPaths.publish || /^\/api\/v2\/snapshots\/[0-9a-f]{40}\/publish$/.test(url.pathname);
    if (method === 'POST' && framed) objects = decodeFrames(body, { maxObjectBytes: 1 << 30, maxFrames: 1 << 20 });
    if (method === 'PUT' && url.pathname.startsWith('/api/v2/objects/')) objects = [{ bytes: body }];
    log.push({ method, path: url.pathname, objects: objects.length, objectBytes: objects.reduce((n, o) => n + o.bytes.length, 0) });
    return fetch(input, init);
  };
}

/** `store`, counting the objects read from it. */
function countingReads(store: Store): { store: Store; reads(): number; reset(): void } {
  let reads = 0;
  const counted = new Proxy(store, {
    get(target, prop) {
      if (prop === 'get') return (id: string) => (reads++, target.get(id));
      if (prop === 'getMany') return (ids: readonly string[]) => ((reads += ids.length), target.getMany(ids));
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: counted, reads: () => reads, reset: () => void (reads = 0) };
}

async function describeSession(store: Store, id: string) {
  const s = await Session.open(store, id);
  const branches = await s.branches();
  const histories = Object.fromEntries(await Promise.all(branches.map(async (b) => [b.name, (await s.history(b.name)).map((h) => h.id)] as const)));
  const head = (await s.history())[0]!;
  return { branch: s.branch, branches, histories, image: await s.component(head.id, 'vm') };
}

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await allFiles(p)));
    else out.push(p);
  }
  return out;
}

describe('publishing and fetching sessions through the relay', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  const log: Sent[] = [];
  let http: RelayHttp;
  const local = createMemoryStore();
  let session: Session;
  let image: Uint8Array;
  let first: PublishResult;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir });
    http = new RelayHttp({ baseUrl: relay.url, fetch: recordingFetch(log) });
    ({ session, image } = await writeSession(local, 6));
    await session.fork((await session.history())[3]!.id, 'side');
    first = await publishSession(local, session.id, http);
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  test('a fetched snapshot is the same session: branches, checkpoints, current branch, component state', async () => {
    expect(first.snapshot.id).toMatch(/^[0-9a-f]{40}$/);
    expect(first.snapshot.version).toBe(1);
    const other = createMemoryStore();
    const fetched = await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), first.snapshot.id, first.key, other);
    expect(fetched.sessionId).toBe(session.id);
    expect(await describeSession(other, session.id)).toEqual(await describeSession(local, session.id));
    expect((await describeSession(other, session.id)).image).toEqual(image);
    await expect(verifySessions(other)).resolves.toBeGreaterThan(0);
  });

  test("the relay's files contain no plaintext: no event text, no session id, no branch name", async () => {
    const files = await allFiles(path.join(dirs.dataDir, 'relay'));
    // Objects are there (loose, or in the pack a publish writes), and none of them is plaintext.
    expect(files.some((f) => f.includes(`${path.sep}packs${path.sep}`))).toBe(true);
    const needles = [SECRET_TEXT, 'question number', session.id, 'side', 'tiny-llama-test'].map((s) => Buffer.from(s));
    for (const f of files) {
      const bytes = await readFile(f);
      for (const n of needles) expect(bytes.includes(n), `${n.toString()} in ${path.relative(dirs.dataDir, f)}`).toBe(false);
    }
  });

  test('publishing again after 10 more steps uploads only the new objects (count and bytes)', async () => {
    const oldRefs = await local.listRefs(sessionPrefix(session.id));
    image = await appendSteps(session, image, 100, 10);
    const newRefs = await local.listRefs(sessionPrefix(session.id));
    const fresh = await collectClosure(local, newRefs, await reachableIds(local, oldRefs));
    expect(fresh.length).toBeGreaterThanOrEqual(20); // a checkpoint and a chunk list per step, plus changed pages

    log.length = 0;
    const second = await publishSession(local, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    expect(second.unchanged).toBe(false);
    expect(second.snapshot.id).toBe(first.snapshot.id);
    expect(second.snapshot.version).toBe(2);
    // Exactly the new objects, plus the new manifest.
    expect(second.sync.objects).toBe(fresh.length);
    const uploadedObjects = log.reduce((n, r) => n + r.objects, 0);
    expect(uploadedObjects).toBe(fresh.length + 1);
    // Sealing adds a small header and a tag per object (and may compress): never more than 120 bytes each.
    const plainBytes = fresh.reduce((n, o) => n + o.bytes.length, 0);
    const uploaded = log.reduce((n, r) => n + r.objectBytes, 0);
    expect(uploaded).toBe(second.sync.objectBytes);
    expect(uploaded).toBeLessThanOrEqual(plainBytes + 120 * uploadedObjects + 400);

    const other = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), first.snapshot.id, first.key, other);
    expect(await describeSession(other, session.id)).toEqual(await describeSession(local, session.id));

    log.length = 0;
    const third = await publishSession(local, session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    expect(third.unchanged).toBe(true);
    expect(log.filter((r) => r.objects > 0 || r.method === 'PUT')).toEqual([]);
  });

  test('publishing onto a snapshot it published reads only the new objects here, not the whole session again', async () => {
    const count = countingReads(local);
    const previous = { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key };
    // A step more, published: this publish learns what the snapshot holds (a walk of the whole session). Then three more.
    image = await appendSteps(session, image, 200, 1);
    const known = await publishSession(local, session.id, http, previous);
    expect(known.base.reachable?.size).toBeGreaterThan(0);
    const whole = (await collectClosure(local, await local.listRefs(sessionPrefix(session.id)))).length;
    const oldRefs = await local.listRefs(sessionPrefix(session.id));
    image = await appendSteps(session, image, 300, 3);
    const fresh = await collectClosure(local, await local.listRefs(sessionPrefix(session.id)), await reachableIds(local, oldRefs));
    count.reset();
    const onto = await publishSession(count.store, session.id, http, { ...previous, base: known.base });
    expect(onto.sync.objects).toBe(fresh.length);
    expect(count.reads()).toBeLessThanOrEqual(fresh.length + 2);
    // Without what the last publish learnt, the same kind of publish walks everything again.
    image = await appendSteps(session, image, 400, 3);
    count.reset();
    const cold = await publishSession(count.store, session.id, http, previous);
    expect(cold.sync.objects).toBeGreaterThan(0);
    expect(count.reads()).toBeGreaterThan(whole);
    const other = createMemoryStore();
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), first.snapshot.id, first.key, other);
    expect(await describeSession(other, session.id)).toEqual(await describeSession(local, session.id));
  });

  test('a wrong key is refused as such, and a key of the wrong size before any request', async () => {
    const wrong = new Uint8Array(32).fill(9);
    await expect(fetchSnapshot(http, first.snapshot.id, wrong, createMemoryStore())).rejects.toSatisfy((e) => isFerryError(e, 'snapshot/wrong-key'));
    await expect(fetchSnapshot(http, first.snapshot.id, new Uint8Array(16), createMemoryStore())).rejects.toSatisfy((e) => isFerryError(e, 'snapshot/bad-key'));
  });

  test('a relay restart keeps every published snapshot intact, and its write token still works', async () => {
    const store2 = createMemoryStore();
    const { session: s2 } = await writeSession(store2, 3);
    const p2 = await publishSession(store2, s2.id, http);
    const before = await http.getSnapshot(first.snapshot.id);

    relay = await relay.restart();
    const again = new RelayHttp({ baseUrl: relay.url });
    expect(await again.getSnapshot(first.snapshot.id)).toEqual(before);
    for (const [p, store, id] of [[first, local, session.id], [p2, store2, s2.id]] as const) {
      const other = createMemoryStore();
      await fetchSnapshot(again, p.snapshot.id, p.key, other);
      expect(await describeSession(other, id)).toEqual(await describeSession(store, id));
    }
    await appendSteps(s2, new Uint8Array(4 * 65536), 50, 1);
    const updated = await publishSession(store2, s2.id, again, { snapshotId: p2.snapshot.id, writeToken: p2.writeToken, key: p2.key });
    expect(updated.snapshot.version).toBe(2);
    const other = createMemoryStore();
    await fetchSnapshot(again, p2.snapshot.id, p2.key, other);
    expect(await other.getRef(branchRef(s2.id, 'main'))).toBe(await store2.getRef(branchRef(s2.id, 'main')));
  });
});
