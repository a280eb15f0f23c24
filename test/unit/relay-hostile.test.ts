/**
 * The relay from outside, as a stranger: every request of the hostile set (test/support/hostile-requests.ts) is
 * answered 4xx with a JSON error that carries a code; a run started with a wrong write token is refused for the
 * token even when no worker is attached; a DNS-rebinding Host is refused while the relay's own names are served;
 * and the relay's store can be verified although its object ids are HMACs.
 */
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { RelayHttp, paths, publishSession } from '../../src/core/protocol/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { hostileRequests, sendHostile, type HostileRequest } from '../support/hostile-requests.ts';
import { makeTempDirs, startTestRelay, writeSession, type TestRelay } from './api/relay-harness.ts';

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let model: string;

beforeAll(async () => {
  dirs = await makeTempDirs();
  const file = path.join(dirs.root, 'tiny.gguf');
  await writeFile(file, generateTinyModel({}));
  // `ferry relay --model`: /v1 served, no worker of its own.
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: file, embeddedWorker: false });
  model = ((await (await fetch(`${relay.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
}, 120_000);

afterAll(async () => {
  await relay?.close();
  await dirs?.cleanup();
});

describe('every hostile request gets a 4xx JSON error with a code', () => {
  test.each(hostileRequests('placeholder').map((r) => [r.name, r] as const))('%s', async (_name, template: HostileRequest) => {
    const request = hostileRequests(model).find((r) => r.name === template.name)!;
    const [answer] = await sendHostile(relay.url, [request]);
    expect({ status: answer!.status, code: answer!.code }).toEqual({ status: request.status, code: request.code });
    expect(answer!.ok).toBe(true);
  });
});

test('the relay\'s own names are served: localhost, loopback addresses, LAN addresses', async () => {
  const port = new URL(relay.url).port;
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `192.168.1.20:${port}`]) {
    const [answer] = await sendHostile(relay.url, [{ name: host, method: 'GET', path: '/healthz', headers: { host }, status: 200, code: '' }]);
    expect(answer!.status, host).toBe(200);
  }
});

test('a run with a wrong write token is refused for the token, though no worker is attached', async () => {
  const store = createMemoryStore();
  const { session } = await writeSession(store, 1);
  const published = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
  const [answer] = await sendHostile(relay.url, [{
    name: 'wrong token',
    method: 'POST',
    path: paths.runs,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ snapshot: published.snapshot.id, writeToken: 'A'.repeat(43), keys: {}, input: { type: 'resume' }, readVerifier: 'B'.repeat(43) }),
    status: 403,
    code: 'relay/bad-token',
  }]);
  expect({ status: answer!.status, code: answer!.code }).toEqual({ status: 403, code: 'relay/bad-token' });
});

test('the relay\'s store verifies: sealed objects under HMAC ids are not reported as corrupt', async () => {
  const store = createMemoryStore();
  const { session } = await writeSession(store, 2);
  await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
  const report = await relay.app.relayStore.verify();
  expect(report.objects).toBeGreaterThan(0);
  expect(report.problems).toEqual([]);
});
