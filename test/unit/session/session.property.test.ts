import fc from 'fast-check';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'vitest';
import { openFsStore } from '../../../server/store/index.ts';
import { exportSession, importSession } from '../../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { expectSameSession, opArb, runOps } from '../../support/session-model.ts';

describe('session properties', () => {
  it('random append/fork/rollback/switch sequences match the model', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), async (ops) => {
      await runOps(createMemoryStore(), ops);
    }), { numRuns: 100 });
  });

  it('export → import into a fresh memory store reproduces every branch and checkpoint', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), async (ops) => {
      const source = createMemoryStore();
      const session = await runOps(source, ops);
      const target = createMemoryStore();
      await importSession(target, await exportSession(source, session.id));
      await expectSameSession(source, target, session.id);
    }), { numRuns: 50 });
  });

  it('export → import into a fresh filesystem store reproduces every branch and checkpoint', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), async (ops) => {
      const source = createMemoryStore();
      const session = await runOps(source, ops);
      const dir = await mkdtemp(path.join(tmpdir(), 'ferry-prop-'));
      const target = await openFsStore(dir);
      try {
        await importSession(target, await exportSession(source, session.id));
        await expectSameSession(source, target, session.id);
        await expectSameSession(target, source, session.id);
      } finally {
        await target.close();
        await rm(dir, { recursive: true, force: true });
      }
    }), { numRuns: 20 });
  });
});
