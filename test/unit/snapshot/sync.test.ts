import { describe, expect, it } from 'vitest';
import { PAGE_SIZE, Session } from '../../../src/core/session/index.ts';
import { collectClosure, deriveSessionKeys, generateSessionKey, sealedRelay, storeTarget, syncSession } from '../../../src/core/snapshot/index.ts';
import { MemoryBackend, createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { expectSameSession } from '../../support/session-model.ts';
import { chatStep, patternImage, testLlm } from '../../support/session-fixtures.ts';

async function grow(session: Session, image: Uint8Array, from: number, steps: number): Promise<Uint8Array> {
  let current = image;
  for (let n = from; n < from + steps; n++) {
    current = current.slice();
    current.set(patternImage(100, n), (n * 7919) % (current.length - 100));
    await session.append(chatStep(n, { vm: current }));
  }
  return current;
}

async function closureIds(store: Store, sessionId: string): Promise<Map<string, number>> {
  const objs = await collectClosure(store, await store.listRefs(`sessions/${sessionId}/`));
  return new Map(objs.map((o) => [o.id, o.bytes.length]));
}

describe('have/want sync', () => {
  it('a second transfer after ten more steps sends only the new objects', async () => {
    const source = createMemoryStore();
    const target = createMemoryStore();
    const image = patternImage(8 * PAGE_SIZE, 5);
    const session = await Session.create(source, { llm: testLlm, components: { vm: image } });
    const latest = await grow(session, image, 0, 20);
    await session.fork((await session.history())[5]!.id, 'side');

    const first = await syncSession(source, storeTarget(target), session.id);
    const before = await closureIds(source, session.id);
    expect(first.objects).toBe(before.size);
    await expectSameSession(source, target, session.id);

    await grow(session, latest, 20, 10);
    const after = await closureIds(source, session.id);
    const fresh = [...after].filter(([id]) => !before.has(id));
    const deltaBytes = fresh.reduce((n, [, size]) => n + size, 0);
    const second = await syncSession(source, storeTarget(target), session.id);
    expect(second.objects).toBe(fresh.length);
    expect(second.objects).toBe(30); // ten steps × (checkpoint + chunk list + one changed page)
    expect(second.objectBytes).toBe(deltaBytes);
    expect(second.totalBytes).toBeLessThanOrEqual(deltaBytes + 2048);
    await expectSameSession(source, target, session.id);

    const third = await syncSession(source, storeTarget(target), session.id);
    expect(third.objects).toBe(0);
    expect(third.objectBytes).toBe(0);
  });

  it('mirrors rollbacks and branch switches', async () => {
    const source = createMemoryStore();
    const target = createMemoryStore();
    const session = await Session.create(source, { llm: testLlm });
    const a = await session.append(chatStep(1));
    await session.append(chatStep(2));
    await syncSession(source, storeTarget(target), session.id);
    await session.rollback(a);
    await session.fork(a, 'other');
    await session.switchBranch('other');
    const stats = await syncSession(source, storeTarget(target), session.id);
    expect(stats.objects).toBe(2); // the fork marker and the new head object
    await expectSameSession(source, target, session.id);
  });

  it('syncs through the encrypted relay, pushing only the delta the second time', async () => {
    const keys = await deriveSessionKeys(generateSessionKey());
    const relay = sealedRelay(new MemoryBackend(), keys);
    const device = createMemoryStore();
    const image = patternImage(4 * PAGE_SIZE, 9);
    const session = await Session.create(device, { llm: testLlm, components: { vm: image } });
    const latest = await grow(session, image, 0, 5);
    const first = await syncSession(device, relay, session.id);
    await grow(session, latest, 5, 10);
    const second = await syncSession(device, relay, session.id);
    expect(second.objects).toBe(30);
    expect(first.objects).toBe((await closureIds(device, session.id)).size - 30);

    const other = createMemoryStore();
    await syncSession(relay, storeTarget(other), session.id);
    await expectSameSession(device, other, session.id);
  });
});
