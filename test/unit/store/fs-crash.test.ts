/**
 * Crash consistency: a child process writing to the filesystem store is SIGKILLed at random moments; after each
 * kill the store opens, verifies, and every session ref reaches a complete graph.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { openFsStore } from '../../../server/store/index.ts';
import { Session } from '../../../src/core/session/index.ts';
import { verifySessions } from '../../../src/core/snapshot/index.ts';

const writer = fileURLToPath(new URL('../../support/fs-crash-writer.ts', import.meta.url));
const ITERATIONS = 5;

function runAndKill(dir: string, seed: number, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer exited with ${code}: ${stderr}`))));
  });
}

it(`survives ${ITERATIONS} SIGKILLs at random points during writes`, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-crash-'));
  try {
    let lastSteps = 0;
    for (let i = 0; i < ITERATIONS; i++) {
      const seed = 1 + Math.floor(Math.random() * 1e9);
      await runAndKill(dir, seed, 50 + Math.floor(Math.random() * 400));
      const store = await openFsStore(dir);
      const report = await store.verify();
      expect(report.problems, `after kill ${i + 1} (seed ${seed})`).toEqual([]);
      expect(await verifySessions(store)).toBeGreaterThan(0);
      const head = (await store.listRefs('sessions/')).find((r) => r.name.endsWith('/head'))!;
      const session = await Session.open(store, head.name.split('/')[1]!);
      const steps = (await session.history()).length;
      expect(steps).toBeGreaterThan(0);
      lastSteps = Math.max(lastSteps, steps);
      await store.close();
    }
    expect(lastSteps).toBeGreaterThan(1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 120_000);
