import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FsBackend } from '../../../server/store/index.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { Session } from '../../../src/core/session/index.ts';
import {
  collectClosure,
  decodeContainer,
  deriveSessionKeys,
  encodeContainer,
  exportSession,
  generateSessionKey,
  importSession,
  openObject,
  sealObject,
  sealedRelay,
  storeTarget,
  syncSession,
} from '../../../src/core/snapshot/index.ts';
import { MemoryBackend, createMemoryStore, fromHex, type Store } from '../../../src/core/store/index.ts';
import { generationEvent, testLlm, userEvent } from '../../support/session-fixtures.ts';

const SECRETS = ['the launch code is PELICAN-4417', 'quarterly revenue fell by 12 percent', 'call Dr. Okonkwo on Tuesday'];
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isFerryError(e) ? e.code : String(e)));

async function secretSession(store: Store): Promise<Session> {
  const session = await Session.create(store, { llm: testLlm });
  for (const s of SECRETS) await session.append({ events: [userEvent(s), generationEvent(`noted: ${s}`)] });
  return session;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) !== -1;
}

async function allFiles(dir: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) out.push(await readFile(path.join(entry.parentPath, entry.name)));
  }
  return out;
}

describe('encryption for the relay and files', () => {
  it('the relay-side copy on disk holds no plaintext event text and no local ids', async () => {
    const device = createMemoryStore();
    const session = await secretSession(device);
    const keys = await deriveSessionKeys(generateSessionKey());
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-relay-'));
    const backend = await FsBackend.open(dir);
    try {
      await syncSession(device, sealedRelay(backend, keys), session.id);
      const files = await allFiles(dir);
      const closure = await collectClosure(device, await device.listRefs(`sessions/${session.id}/`));
      // The search covers the sealed copies (small commits keep them in the store's database files).
      expect(files.reduce((n, f) => n + f.length, 0)).toBeGreaterThan(closure.reduce((n, o) => n + o.bytes.length, 0));
      const localIds = closure.map((o) => o.id);
      const needles: Uint8Array[] = [...SECRETS.flatMap((s) => [s, s.slice(0, 12)]), ...localIds].map((s) => new TextEncoder().encode(s));
      needles.push(...localIds.map((id) => fromHex(id)));
      for (const f of files) for (const n of needles) expect(contains(f, n)).toBe(false);
      // The search can fail: the same search finds the text in the plaintext objects.
      const raw = (await collectClosure(device, await device.listRefs(`sessions/${session.id}/`))).map((o) => o.bytes);
      expect(raw.some((b) => contains(b, new TextEncoder().encode(SECRETS[0]!)))).toBe(true);
    } finally {
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pulls back with the right key, and refuses the wrong key with a typed error', async () => {
    const device = createMemoryStore();
    const session = await secretSession(device);
    const relayBackend = new MemoryBackend();
    const keys = await deriveSessionKeys(generateSessionKey());
    await syncSession(device, sealedRelay(relayBackend, keys), session.id);
    const other = createMemoryStore();
    await syncSession(sealedRelay(relayBackend, keys), storeTarget(other), session.id);
    expect((await (await Session.open(other, session.id)).history()).length).toBe(SECRETS.length + 1);

    const wrong = await deriveSessionKeys(generateSessionKey());
    expect(await codeOf(syncSession(sealedRelay(relayBackend, wrong), storeTarget(createMemoryStore()), session.id))).toBe('snapshot/wrong-key');
    expect(await codeOf(deriveSessionKeys(new Uint8Array(16)))).toBe('snapshot/bad-key');
  });

  it('a tampered or swapped relay object fails authentication and imports nothing', async () => {
    const device = createMemoryStore();
    const session = await secretSession(device);
    const keys = await deriveSessionKeys(generateSessionKey());
    const objects = await collectClosure(device, await device.listRefs(`sessions/${session.id}/`));
    const sealed = await sealObject(keys, objects[0]!);
    for (const i of [0, 20, sealed.bytes.length - 1]) {
      const bad = sealed.bytes.slice();
      bad[i]! ^= 0x01;
      expect(await codeOf(openObject(keys, sealed.id, bad))).toMatch(/^snapshot\/(auth-failed|bad-container|bad-version)$/);
    }
    const body = sealed.bytes.slice();
    body[body.length - 5]! ^= 0x80;
    expect(await codeOf(openObject(keys, sealed.id, body))).toBe('snapshot/auth-failed');
    const otherSealed = await sealObject(keys, objects[1]!);
    expect(await codeOf(openObject(keys, sealed.id, otherSealed.bytes))).toBe('snapshot/auth-failed');
    const again = await sealObject(keys, objects[0]!);
    expect(again.id).toBe(sealed.id);
    expect(Buffer.from(again.bytes).equals(Buffer.from(sealed.bytes))).toBe(false); // fresh IV every time

    const relayBackend = new MemoryBackend();
    await syncSession(device, sealedRelay(relayBackend, keys), session.id);
    const victim = (await relayBackend.listRefs(`sessions/${session.id}/branches/`))[0]!.id;
    const stored = (await relayBackend.getObjects([victim]))[0]!;
    stored[stored.length - 1]! ^= 0x01;
    await relayBackend.commit([{ id: victim, bytes: stored }], []);
    const target = createMemoryStore();
    expect(await codeOf(syncSession(sealedRelay(relayBackend, keys), storeTarget(target), session.id))).toBe('snapshot/auth-failed');
    expect(await target.listRefs()).toEqual([]);
  });

  it('encrypted .ferry files: no plaintext, key required, wrong key and tampering refused', async () => {
    const device = createMemoryStore();
    const session = await secretSession(device);
    const keys = await deriveSessionKeys(generateSessionKey());
    const file = await exportSession(device, session.id, { keys });
    for (const s of SECRETS) expect(contains(file, new TextEncoder().encode(s))).toBe(false);
    expect(await codeOf(importSession(createMemoryStore(), file))).toBe('snapshot/key-required');
    expect(await codeOf(importSession(createMemoryStore(), file, { keys: await deriveSessionKeys(generateSessionKey()) }))).toBe('snapshot/wrong-key');
    const tampered = file.slice();
    tampered[tampered.length - 10]! ^= 0x04;
    const target = createMemoryStore();
    expect(await codeOf(importSession(target, tampered, { keys }))).toBe('snapshot/auth-failed');
    expect(await target.listRefs()).toEqual([]);
    expect(await importSession(target, file, { keys })).toBe(session.id);
  });

  it('compresses what shrinks: small text yes; small random-looking bytes and tiny objects are sealed as they are', async () => {
    const keys = await deriveSessionKeys(generateSessionKey());
    const sizes = async (payload: Uint8Array) => [(await encodeContainer(payload, { kind: 'object', keys })).length, (await encodeContainer(payload, { kind: 'object', keys, compress: false })).length];
    const text = new TextEncoder().encode('the agent and the model, a little browser, the cloud device; '.repeat(40));
    const [packed, plain] = await sizes(text);
    expect(packed).toBeLessThan(plain! / 2);
    const [noise, noisePlain] = await sizes(crypto.getRandomValues(new Uint8Array(3000)));
    expect(noise).toBe(noisePlain);
    const [tiny, tinyPlain] = await sizes(text.subarray(0, 200));
    expect(tiny).toBe(tinyPlain);
    for (const payload of [text, text.subarray(0, 200)]) expect(await decodeContainer(await encodeContainer(payload, { kind: 'object', keys }), { kind: 'object', keys })).toEqual(payload);
  });
});
