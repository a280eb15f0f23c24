/**
 * Relays on the shared backends (a real Postgres and a real S3-compatible server, one of each for the file): a
 * session published through one replica is read, and updated, through another; /healthz names each dependency;
 * with the object storage down a publish fails cleanly and leaves nothing half-written; with Postgres down
 * requests fail with a clear 503, and everything works again once it is back; the store verifies (every object
 * readable and sealed, every ref indexed).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RelayHttp, fetchSnapshot, publishSession, type PublishResult } from '../../src/core/protocol/index.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { FsBackend } from '../../server/store/index.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';
import { startS3Server, type S3Server } from '../support/s3-server.ts';
import { appendSteps, makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

interface Health {
  status: string;
  backend: string;
  dependencies: Record<'database' | 'objects', { status: string; where: string; error?: { code: string } }>;
}

describe('relay replicas on Postgres and S3-compatible storage', () => {
  let pg: PostgresServer;
  let s3: S3Server;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let a: TestRelay;
  let b: TestRelay;

  beforeAll(async () => {
    [pg, s3, dirs] = await Promise.all([startPostgres(), startS3Server(), makeTempDirs()]);
    const shared = { database: pg.url(), objects: s3.location() };
    const workerToken = 'r'.repeat(43);
    // Two replicas of one deployment: each its own data folder, the same database and bucket.
    a = await startTestRelay({ staticDir: dirs.staticDir, dataDir: `${dirs.dataDir}-a`, shared, workerToken });
    b = await startTestRelay({ staticDir: dirs.staticDir, dataDir: `${dirs.dataDir}-b`, shared, workerToken });
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await Promise.all([pg?.destroy(), s3?.destroy(), dirs?.cleanup()]);
  });

  const health = async (relay: TestRelay): Promise<{ code: number; body: Health }> => {
    const res = await fetch(`${relay.url}/healthz`);
    return { code: res.status, body: (await res.json()) as Health };
  };

  test('/healthz reports the database and the object storage', async () => {
    const { code, body } = await health(a);
    expect(code).toBe(200);
    expect(body).toMatchObject({ status: 'ok', backend: 'shared', dependencies: { database: { status: 'ok' }, objects: { status: 'ok' } } });
    expect(body.dependencies.database.where).toContain('postgres');
    expect(body.dependencies.objects.where).toContain(`s3://${s3.bucket}/`);
  });

  test('a session published through one replica is fetched and updated through the other', async () => {
    const local = createMemoryStore();
    const { session, image } = await writeSession(local, 5);
    const first = await publishSession(local, session.id, new RelayHttp({ baseUrl: a.url }));
    const copy = createMemoryStore();
    const fetched = await fetchSnapshot(new RelayHttp({ baseUrl: b.url }), first.snapshot.id, first.key, copy);
    expect(fetched.sessionId).toBe(session.id);
    const there = await Session.open(copy, session.id);
    expect((await there.history()).map((c) => c.id)).toEqual((await session.history()).map((c) => c.id));
    await appendSteps(session, image, 5, 3);
    const second = await publishSession(local, session.id, new RelayHttp({ baseUrl: b.url }), { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key });
    expect(second.snapshot.version).toBe(first.snapshot.version + 1);
    expect(await new RelayHttp({ baseUrl: a.url }).getSnapshot(first.snapshot.id)).toEqual(second.snapshot);
  });

  test('the shared store verifies: sealed objects under HMAC ids pass; an index row whose bytes are gone is reported', async () => {
    const local = createMemoryStore();
    const { session } = await writeSession(local, 2);
    await publishSession(local, session.id, new RelayHttp({ baseUrl: a.url }));
    const report = await a.app.relayStore.verify();
    expect(report.objects).toBeGreaterThan(0);
    expect(report.problems).toEqual([]);
    const objects = a.app.relayStore.objects;
    if (objects instanceof FsBackend) throw new Error('the replica runs on the filesystem store');
    const lost = 'f'.repeat(64);
    await objects.db.query('INSERT INTO objects (id, size, pack, "offset") VALUES ($1, 10, NULL, NULL)', [lost]);
    try {
      expect((await a.app.relayStore.verify()).problems).toEqual([`object ${lost} is indexed but its bytes are missing or short`]);
    } finally {
      await objects.db.query('DELETE FROM objects WHERE id = $1', [lost]);
    }
  });

  test('with the object storage down, a publish fails with 503 and nothing of it becomes visible', async () => {
    const local = createMemoryStore();
    const { session } = await writeSession(local, 3);
    const http = new RelayHttp({ baseUrl: a.url });
    const before = await counts(a);
    await s3.stop();
    let failed: unknown;
    try {
      failed = await publishSession(local, session.id, http).then(() => undefined, (e: unknown) => e);
      const { code, body } = await health(b);
      expect(code).toBe(503);
      expect(body.dependencies.objects).toMatchObject({ status: 'unavailable', error: { code: 'store/unavailable' } });
      expect(body.dependencies.database.status).toBe('ok');
    } finally {
      await s3.start();
    }
    expect(isFerryError(failed, 'store/unavailable'), String(failed)).toBe(true);
    // No snapshot was created, no object indexed: the same publish now goes through as a fresh one.
    expect(await counts(b)).toEqual(before);
    const ok = await publishSession(local, session.id, http);
    expect(ok.snapshot.version).toBe(1);
  });

  test('with Postgres down, requests fail with a clear 503; once it is back everything works again', async () => {
    const local = createMemoryStore();
    const { session } = await writeSession(local, 2);
    const published: PublishResult = await publishSession(local, session.id, new RelayHttp({ baseUrl: a.url }));
    await pg.stop();
    try {
      const res = await fetch(`${b.url}/api/v2/snapshots/${published.snapshot.id}`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('store/unavailable');
      expect(body.error.message).toMatch(/database .*Retry shortly/);
      expect((await health(a)).body.dependencies.database.status).toBe('unavailable');
    } finally {
      await pg.start();
    }
    expect(await new RelayHttp({ baseUrl: b.url }).getSnapshot(published.snapshot.id)).toEqual(published.snapshot);
    expect((await health(a)).code).toBe(200);
  });
});

/** Objects indexed and snapshots registered in the shared database, as a replica sees them. */
async function counts(relay: TestRelay): Promise<{ objects: number; snapshots: number }> {
  const backend = relay.app.relayStore.objects;
  if (backend instanceof FsBackend) throw new Error('this relay should be on the shared backends');
  const [row] = await backend.db.query<{ objects: string; snapshots: string }>('SELECT (SELECT count(*) FROM objects) AS objects, (SELECT count(*) FROM snapshots) AS snapshots');
  return { objects: Number(row!.objects), snapshots: Number(row!.snapshots) };
}
