/**
 * `.ferry` exports protected by a passphrase (PBKDF2-SHA256 → AES-256-GCM): the file says how it is protected
 * before anything is asked (plain, passphrase), holds no plaintext, imports only with the right passphrase — a
 * missing or wrong one is a typed error that changes nothing — and any altered byte or a header claiming an absurd
 * KDF cost is refused.
 */
import { describe, expect, test } from 'vitest';
import { isFerryError } from '../../../src/core/errors.ts';
import { Session, decodeMsgpack, encodeCanonical } from '../../../src/core/session/index.ts';
import { PASSPHRASE_CONTAINER_VERSION, describeFerryFile, exportSession, importSession, verifySessions } from '../../../src/core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { generationEvent, testLlm, userEvent } from '../../support/session-fixtures.ts';

const SECRET = 'the harbour master keeps the spare key under the third buoy';
const PASSPHRASE = 'correct horse battery staple';
const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isFerryError(e) ? e.code : String(e)));

async function secretSession(store: Store): Promise<Session> {
  const session = await Session.create(store, { llm: testLlm });
  await session.append({ events: [userEvent(SECRET), generationEvent(`noted: ${SECRET}`)] });
  return session;
}

describe('.ferry files protected by a passphrase', () => {
  test('the file says which kind it is; it holds no plaintext; only the right passphrase opens it', async () => {
    const store = createMemoryStore();
    const session = await secretSession(store);
    const plain = await exportSession(store, session.id);
    const protectedFile = await exportSession(store, session.id, { passphrase: PASSPHRASE });
    expect(describeFerryFile(plain)).toEqual({ protection: 'none' });
    expect(describeFerryFile(protectedFile)).toEqual({ protection: 'passphrase' });
    expect(protectedFile[5]).toBe(PASSPHRASE_CONTAINER_VERSION);
    expect(Buffer.from(protectedFile).includes(Buffer.from('harbour master'))).toBe(false);
    expect(Buffer.from(protectedFile).includes(Buffer.from(session.id))).toBe(false);

    const target = createMemoryStore();
    expect(await codeOf(importSession(target, protectedFile))).toBe('snapshot/passphrase-required');
    expect(await codeOf(importSession(target, protectedFile, { passphrase: 'wrong horse' }))).toBe('snapshot/wrong-passphrase');
    expect(await codeOf(importSession(target, protectedFile, { passphrase: '' }))).toBe('snapshot/bad-passphrase');
    expect(await target.listRefs()).toEqual([]);
    expect(await importSession(target, protectedFile, { passphrase: PASSPHRASE })).toBe(session.id);
    await expect(verifySessions(target)).resolves.toBeGreaterThan(0);
    expect((await (await Session.open(target, session.id)).history())[0]!.checkpoint.events[0]).toMatchObject({ type: 'user', text: SECRET });
  });

  test('an altered byte anywhere, or a header claiming an absurd or weak KDF, is refused with nothing stored', async () => {
    const store = createMemoryStore();
    const session = await secretSession(store);
    const file = await exportSession(store, session.id, { passphrase: PASSPHRASE });
    const target = createMemoryStore();
    for (const at of [20, Math.floor(file.length / 2), file.length - 1]) {
      const bad = file.slice();
      bad[at]! ^= 0x01;
      expect(await codeOf(importSession(target, bad, { passphrase: PASSPHRASE }))).toMatch(/^snapshot\//);
    }
    // The header re-encoded with another iteration count: too many would make the reader spin, too few is weak.
    const headerLength = new DataView(file.buffer, file.byteOffset + 6, 4).getUint32(0);
    const header = decodeMsgpack(file.subarray(10, 10 + headerLength), 'snapshot/bad-container', 'header') as { kdf: { iterations: number } };
    for (const iterations of [50_000_000, 1000]) {
      const forged = encodeCanonical({ ...header, kdf: { ...header.kdf, iterations } });
      const out = new Uint8Array(10 + forged.length + file.length - 10 - headerLength);
      out.set(file.subarray(0, 10));
      new DataView(out.buffer).setUint32(6, forged.length);
      out.set(forged, 10);
      out.set(file.subarray(10 + headerLength), 10 + forged.length);
      expect(await codeOf(importSession(target, out, { passphrase: PASSPHRASE }))).toBe('snapshot/bad-container');
    }
    expect(await target.listRefs()).toEqual([]);
  });
});
