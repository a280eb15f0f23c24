import fc from 'fast-check';
import { describe, it } from 'vitest';
import { openIdbStore } from '../../src/browser/idb-store.ts';
import { exportSession, importSession } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { idbStoreSuite } from '../support/idb-cases.ts';
import { expectSameSession, opArb, runOps } from '../support/session-model.ts';

idbStoreSuite('IndexedDB (Chromium)');

describe('sessions on IndexedDB in Chromium', () => {
  it('export → import into a fresh IndexedDB store reproduces every branch and checkpoint, and survives reopening', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 25 }), async (ops) => {
      const source = createMemoryStore();
      const session = await runOps(source, ops);
      const name = `ferry-prop-${Date.now()}-${run++}`;
      const target = openIdbStore({ name });
      await importSession(target, await exportSession(source, session.id));
      await expectSameSession(source, target, session.id);
      await target.close();
      const reopened = openIdbStore({ name });
      await expectSameSession(source, reopened, session.id);
      await reopened.close();
      indexedDB.deleteDatabase(name);
    }), { numRuns: 15 });
  });

  it('runs random session operations directly on IndexedDB', async () => {
    let run = 0;
    await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 25 }), async (ops) => {
      const name = `ferry-ops-${Date.now()}-${run++}`;
      const store = openIdbStore({ name });
      await runOps(store, ops);
      await store.close();
      indexedDB.deleteDatabase(name);
    }), { numRuns: 15 });
  });
});
