/**
 * Decoder bombs: small `.ferry` files that claim gigabytes (nested array headers, nil-padded nesting, a map claiming
 * 2^31 entries, a bundle whose object is a nesting bomb, 250 MB of zeros in 250 KB). Each is imported in its own
 * process whose JavaScript heap is capped at 64 MB plus twice the declared payload limit: every one must end in a
 * typed error, refused by a bound checked while decoding — a decoder that allocates first dies of the cap instead.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeBombs, type BombOutcome } from '../../support/decode-bombs.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const LIMIT_MIB = 16;
const HEAP_CAP_MIB = 64 + 2 * LIMIT_MIB;

let dir: string;
const files = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bombs-'));
  for (const bomb of await decodeBombs()) {
    const file = path.join(dir, `${bomb.name}.ferry`);
    await writeFile(file, bomb.file);
    files.set(bomb.name, file);
  }
});

afterAll(() => rm(dir, { recursive: true, force: true }));

async function importCapped(file: string): Promise<BombOutcome> {
  const { stdout } = await promisify(execFile)(process.execPath, [`--max-old-space-size=${HEAP_CAP_MIB}`, '--import', 'tsx', 'test/support/decode-bombs.ts', file, String(LIMIT_MIB)], { cwd: root });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as BombOutcome;
}

describe('decoder bombs end in typed errors within the memory bound', () => {
  const expected: Record<string, { code: string; limit: string | null }> = {
    'nested-arrays': { code: 'snapshot/bad-bundle', limit: 'length' },
    'nested-nil-arrays': { code: 'snapshot/bad-bundle', limit: 'length' },
    'huge-map': { code: 'snapshot/bad-bundle', limit: 'length' },
    'object-nesting': { code: 'snapshot/bad-object', limit: 'depth' },
    'zeros-1000x': { code: 'snapshot/too-large', limit: null },
  };
  for (const [name, want] of Object.entries(expected)) {
    test(name, async () => {
      const outcome = await importCapped(files.get(name)!);
      expect(outcome).toMatchObject({ code: want.code, limit: want.limit });
    });
  }
});
