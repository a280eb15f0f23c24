/**
 * The relay reads nothing: after a share, a run and a move of a session whose messages and replies carry canary
 * text, not one byte of that text is in the relay's data folder — its object store, its run log, the SQLite write-
 * ahead logs — while the device that holds the key reads it all back from the run's (sealed) events. The same on the
 * shared backends: no row of any Postgres table, no byte of the cluster's folder (its write-ahead log included) or of
 * the S3-compatible server's holds it either.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Engine } from '../../src/core/llm/engine.ts';
import { plaintextHits, shareRunMove, tableHits } from '../support/canary.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { fixtures, tinyEngine, tinyModelFile, type Fixtures } from '../support/runtime-agent.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

let f: Fixtures;
let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let model: string;
let engine: Engine;

beforeAll(async () => {
  f = await fixtures();
  dirs = await makeTempDirs();
  model = await tinyModelFile();
  engine = await tinyEngine(model);
}, 180_000);

afterAll(async () => {
  await engine?.dispose();
  await dirs?.cleanup();
});

test('no canary of a message or its reply reaches the relay\'s disk after a share, a run and a move', async () => {
  const relay: TestRelay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: Object.values(f.dirs) });
  try {
    const needles = await shareRunMove(relay.url, 'embedded-7731', f, engine);
    expect(needles.length).toBeGreaterThanOrEqual(6);
    // The relay is still running: its SQLite write-ahead logs are on disk as they are.
    expect(await plaintextHits(dirs.dataDir, needles)).toEqual([]);
  } finally {
    await relay.close();
  }
}, 240_000);

describe('on the shared backends (Postgres and S3-compatible storage)', () => {
  let pg: PostgresServer;
  let s3: S3Server;

  beforeAll(async () => {
    [pg, s3] = await Promise.all([startPostgres(), startS3Server()]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([pg?.destroy(), s3?.destroy()]);
  });

  test('no canary reaches a Postgres table, the database\'s folder, the object storage or the data folder', async () => {
    const database = await pg.createDatabase();
    const dataDir = `${dirs.dataDir}-shared`;
    const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir, model, componentDirs: Object.values(f.dirs), shared: { database, objects: s3.location() }, workerToken: 's'.repeat(43) });
    try {
      const needles = await shareRunMove(relay.url, 'shared-4419', f, engine);
      expect(needles.length).toBeGreaterThanOrEqual(6);
      expect(await tableHits(database, needles)).toEqual([]);
      expect(await plaintextHits(pg.dir, needles)).toEqual([]);
      expect(await plaintextHits(s3.dir, needles)).toEqual([]);
      expect(await plaintextHits(dataDir, needles)).toEqual([]);
    } finally {
      await relay.close();
    }
  }, 240_000);
});
