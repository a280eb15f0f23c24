/**
 * Keys and members (DESIGN §9), against a relay that runs no worker of its own:
 * - a session key reaches only the worker that runs the session: what the starter sends holds no key and no input
 *   in the clear, and the key the relay hands a worker opens with that worker's key pair alone;
 * - a space's id is not a credential: a socket naming a real space without proving membership (no proof, a forged
 *   proof, its own key passed off as the space's) is refused and gets no run of the space;
 * - strangers cannot fill the caps: refused rogues take no place of the space, connections that never prove anything
 *   are limited per address and dropped (sixteen of them from other addresses do not lock the owner out), and one
 *   address can hold only so many proven nodes.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import {
  RelayHttp,
  RunRecordSchema,
  SPACE_HEADER,
  SPACE_LIMITS,
  WorkerListSchema,
  createSpaceSecret,
  publishSession,
  spaceCredentials,
  startSealedRun,
  toBase64Url,
  workerPaths,
  type PublishResult,
} from '../../src/core/protocol/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { FakeWorker, TOKEN, runRequest } from './api/fake-worker.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let published: PublishResult;

beforeAll(async () => {
  dirs = await makeTempDirs();
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, heartbeatMs: 500 });
  const store = createMemoryStore();
  const { session } = await writeSession(store, 1);
  published = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
});

afterAll(async () => {
  await relay?.close();
  await dirs?.cleanup();
});

const names = async (space?: string): Promise<string[]> =>
  v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list, { headers: space ? { [SPACE_HEADER]: space } : {} })).json()).workers.map((w) => w.profile.name).sort();

test('the session key reaches only the worker that runs the session; the relay carries it and the input sealed', async () => {
  const a = await FakeWorker.attach(relay.url, 'key-a');
  const b = await FakeWorker.attach(relay.url, 'key-b');
  const sent: string[] = [];
  const http = new RelayHttp({
    baseUrl: relay.url,
    fetch: async (input, init) => {
      if (init?.body instanceof Uint8Array) sent.push(new TextDecoder().decode(init.body));
      return fetch(input, init);
    },
  });
  const text = 'a message only the worker may read';
  const run = await startSealedRun(http, { snapshot: published.snapshot.id, writeToken: published.writeToken, key: published.key, input: { type: 'user', text } });
  const body = sent.join('\n');
  expect(body).not.toContain(toBase64Url(published.key));
  expect(body).not.toContain(Buffer.from(published.key).toString('hex'));
  expect(body).not.toContain(Buffer.from(published.key).toString('base64'));
  expect(body).not.toContain(text);
  const worker = (await Promise.race([a.assigned().then(() => a), b.assigned().then(() => b)]))!;
  const other = worker === a ? b : a;
  const assign = await worker.assigned();
  expect(assign.run).toBe(run.id);
  expect(await worker.keys.open(assign.request.key, published.snapshot.id)).toEqual(published.key);
  await expect(other.keys.open(assign.request.key, published.snapshot.id)).rejects.toMatchObject({ code: 'relay/bad-sealed-key' });
  // Sealed for another snapshot, it does not open either: the relay cannot replay it elsewhere.
  await expect(worker.keys.open(assign.request.key, 'f'.repeat(40))).rejects.toMatchObject({ code: 'relay/bad-sealed-key' });
  worker.send({ type: 'finished', run: run.id, status: 'idle' });
  for (const w of [a, b]) w.close();
  await Promise.all([a.closed, b.closed]);
});

describe('a space id is not a credential', () => {
  test('a rogue socket naming a real space proves nothing, is refused, and gets no run of the space', async () => {
    const owner = await spaceCredentials(createSpaceSecret());
    const stranger = await spaceCredentials(createSpaceSecret());
    const phone = await FakeWorker.device(relay.url, 'owner-phone', owner);
    expect(phone.refused).toBeUndefined();

    const rogues = await Promise.all([
      // The space's id and public key (both public), with a made-up signature.
      FakeWorker.device(relay.url, 'rogue-forged', async () => ({ id: owner.id, key: owner.key, proof: toBase64Url(new Uint8Array(64).fill(7)) })),
      // Its own key and a valid signature, passed off as the space's.
      FakeWorker.device(relay.url, 'rogue-own-key', async (nonce, workerKey) => ({ ...(await stranger.prove(nonce, workerKey)), id: owner.id })),
      // A proof replayed from another connection (another nonce).
      FakeWorker.device(relay.url, 'rogue-replay', async (_nonce, workerKey) => owner.prove(toBase64Url(new Uint8Array(32)), workerKey)),
      // The space named with no proof at all.
      FakeWorker.device(relay.url, 'rogue-bare', undefined),
    ]);
    for (const r of rogues.slice(0, 3)) expect(r.refused?.error.code).toBe('relay/not-a-member');
    expect(rogues[3]!.refused?.error.code).toBe('relay/token-required');
    expect(await names(owner.id)).toEqual(['owner-phone']);

    const res = await runRequest(relay.url, published, { type: 'user', text: 'to my devices' }, { space: owner.id, cloud: false });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    expect((await phone.assigned()).run).toBe(run.id);
    expect(rogues.filter((r) => r.received.some((m) => m.type === 'assign'))).toEqual([]);
    phone.send({ type: 'finished', run: run.id, status: 'idle' });
    phone.close();
    await phone.closed;
  });
});

describe('strangers cannot fill the caps', () => {
  test('rogues naming a space take none of its places: its owner\'s devices still attach', async () => {
    const owner = await spaceCredentials(createSpaceSecret());
    const rogues = await Promise.all(Array.from({ length: SPACE_LIMITS.nodesPerSpace + 4 }, (_, i) =>
      FakeWorker.device(relay.url, `rogue-${i}`, async () => ({ id: owner.id, key: owner.key, proof: toBase64Url(new Uint8Array(64).fill(i)) }))));
    // Each is refused: for its proof, or (while the few one address may have pending are taken) before its socket opens.
    for (const r of rogues) expect(['relay/not-a-member', 'http/refused']).toContain(r.refused?.error.code);
    await Promise.all(rogues.map((r) => r.closed));
    const laptop = await FakeWorker.device(relay.url, 'owner-laptop', owner);
    expect(laptop.refused).toBeUndefined();
    expect(await names(owner.id)).toEqual(['owner-laptop']);
    laptop.close();
    await laptop.closed;
  });

  test('connections that prove nothing are limited per address and dropped when they stay silent', async () => {
    const silent = Array.from({ length: SPACE_LIMITS.unprovenPerAddress }, () => FakeWorker.silent(relay.url));
    await Promise.all(silent.map((s) => s.next((m) => m.type === 'challenge')));
    const owner = await spaceCredentials(createSpaceSecret());
    const refused = await FakeWorker.device(relay.url, 'while-crowded', owner);
    expect(refused.refused?.error.code).toBe('http/refused');
    // The relay drops each silent connection (no hello, no heartbeat) once its time is up; then the address may attach again.
    await Promise.all(silent.map((s) => s.closed));
    const device = await FakeWorker.device(relay.url, 'after-the-crowd', owner);
    expect(device.refused).toBeUndefined();
    device.close();
    await device.closed;
  }, 60_000);

  test('sixteen connections from elsewhere that prove nothing do not lock the owner out', async () => {
    // Strangers on two other addresses, each holding as many unproven connections as one address may.
    const strangers = ['127.0.0.2', '127.0.0.3'].flatMap((address) => Array.from({ length: SPACE_LIMITS.unprovenPerAddress }, () => FakeWorker.silent(relay.url, address)));
    expect(strangers).toHaveLength(16);
    await Promise.all(strangers.map((s) => s.next((m) => m.type === 'challenge')));
    // One more from a stranger's address is refused; the owner's device, from its own, attaches while they wait.
    const more = FakeWorker.silent(relay.url, '127.0.0.2');
    await more.closed;
    expect(more.refused?.error.code).toBe('http/refused');
    const owner = await spaceCredentials(createSpaceSecret());
    const phone = await FakeWorker.device(relay.url, 'owner-phone', owner);
    expect(phone.refused).toBeUndefined();
    expect(await names(owner.id)).toEqual(['owner-phone']);
    for (const s of [...strangers, phone]) s.close();
    await Promise.all([...strangers, phone].map((s) => s.closed));
  });

  test('one address holds at most its share of proven device nodes, whatever spaces they prove', async () => {
    const spaces = await Promise.all(Array.from({ length: SPACE_LIMITS.nodesPerAddress + 1 }, () => spaceCredentials(createSpaceSecret())));
    const nodes: FakeWorker[] = [];
    for (const [i, space] of spaces.entries()) nodes.push(await FakeWorker.device(relay.url, `own-${i}`, space));
    expect(nodes.slice(0, -1).every((n) => n.refused === undefined)).toBe(true);
    expect(nodes.at(-1)!.refused?.error.code).toBe('relay/space-full');
    for (const n of nodes) n.close();
    await Promise.all(nodes.map((n) => n.closed));
  });
});
