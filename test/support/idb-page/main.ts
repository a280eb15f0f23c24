/**
 * Page script for test/unit/store/idb-chromium.test.ts: writes and reads sessions in the real IndexedDB store so
 * the test can reload the page in between, and fills the store under a shrunken quota.
 */
import { openIdbStore } from '../../../src/browser/idb-store.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { PAGE_SIZE, Session } from '../../../src/core/session/index.ts';
import { verifySessions } from '../../../src/core/snapshot/index.ts';
import { chatStep, patternImage, testLlm } from '../session-fixtures.ts';

export interface Written {
  sessionId: string;
  heads: Record<string, string>;
  steps: number;
}

async function describeSession(db: string, sessionId: string): Promise<Written> {
  const store = openIdbStore({ name: db });
  const session = await Session.open(store, sessionId);
  const heads = Object.fromEntries((await session.branches()).map((b) => [b.name, b.head]));
  const steps = (await session.history()).length;
  await verifySessions(store);
  await store.close();
  return { sessionId, heads, steps };
}

async function write(db: string, steps: number): Promise<Written> {
  const store = openIdbStore({ name: db });
  let image = patternImage(4 * PAGE_SIZE, 1);
  const session = await Session.create(store, { llm: testLlm, components: { vm: image } });
  for (let n = 0; n < steps; n++) {
    image = image.slice();
    image.set(patternImage(300, n + 2), (n * 4099) % (image.length - 300));
    await session.append(chatStep(n, { vm: image }));
  }
  await session.fork((await session.history())[2]!.id, 'side');
  await store.close();
  return describeSession(db, session.id);
}

/** Appends steps with fresh random 1 MiB images until the store refuses (the test sets an 8 MiB quota). */
async function fill(db: string): Promise<{ code: string; acknowledged: Written; after: Written }> {
  const store = openIdbStore({ name: db });
  const session = await Session.create(store, { llm: testLlm });
  let acknowledged = 0;
  for (let n = 0; n < 64; n++) {
    const image = new Uint8Array(1 << 20);
    for (let i = 0; i < image.length; i += 65_536) globalThis.crypto.getRandomValues(image.subarray(i, i + 65_536));
    try {
      await session.append(chatStep(n, { vm: image }));
      acknowledged = n + 1;
    } catch (err) {
      await store.close();
      const before: Written = { sessionId: session.id, heads: {}, steps: acknowledged + 1 };
      return { code: isFerryError(err) ? err.code : String(err), acknowledged: before, after: await describeSession(db, session.id) };
    }
  }
  throw new Error('64 MiB written and the quota was never reached: the quota override did not apply.');
}

Object.assign(globalThis, { ferryIdb: { write, read: describeSession, fill } });
document.title = 'ready';
