/**
 * The relay reads nothing: after a share, a run and a move of a session whose messages and replies carry canary
 * text, not one byte of that text is in the relay's data folder — its object store, its run log, the SQLite write-
 * ahead logs — while the device that holds the key reads it all back from the run's (sealed) events.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { Engine } from '../../src/core/llm/engine.ts';
import { RelayHttp, publishSession, startSealedRun, fetchSnapshot, type OpenRunMessage } from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { plaintextHits } from '../support/canary.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, turn, type Fixtures } from '../support/runtime-agent.ts';
import { followToEnd } from './api/fake-worker.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

let f: Fixtures;
let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let engine: Engine;

beforeAll(async () => {
  f = await fixtures();
  dirs = await makeTempDirs();
  const model = await tinyModelFile();
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: Object.values(f.dirs) });
  engine = await tinyEngine(model);
}, 180_000);

afterAll(async () => {
  await relay?.close();
  await engine?.dispose();
  await dirs?.cleanup();
});

test('no canary of a message or its reply reaches the relay\'s disk after a share, a run and a move', async () => {
  const http = new RelayHttp({ baseUrl: relay.url });
  const device = createMemoryStore();
  const canaries = ['canary-shared-quokka-7731', 'canary-run-narwhal-4419', 'canary-moved-axolotl-9052'];

  // A share: a session with a turn, published.
  const runtime = await AgentRuntime.create(device, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
  const replies = (await turn(runtime, canaries[0]!, true)).replies;
  const sessionId = runtime.session.id;
  await runtime.dispose();
  const shared = await publishSession(device, sessionId, http);

  // A run on the relay's worker: a new message there, its reply streamed back.
  const run = await startSealedRun(http, { snapshot: shared.snapshot.id, writeToken: shared.writeToken, key: shared.key, input: { type: 'user', text: canaries[1]! } });
  const { messages } = await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, shared.key);
  const streamed = (type: string, list: OpenRunMessage[]) => list.filter((m) => m.event.type === type).map((m) => String(m.event.text));
  replies.push(...streamed('reply', messages));
  expect(streamed('reply', messages).length).toBeGreaterThan(0);

  // A move: the device takes it back, goes on with a message, publishes and resumes it on the worker.
  await fetchSnapshot(http, shared.snapshot.id, shared.key, device);
  const back = await AgentRuntime.open(device, setupFor(f, engine), sessionId);
  replies.push(...(await turn(back, canaries[2]!)).replies);
  await back.dispose();
  const moved = await publishSession(device, sessionId, http, { snapshotId: shared.snapshot.id, writeToken: shared.writeToken, key: shared.key });
  const resumed = await startSealedRun(http, { snapshot: moved.snapshot.id, writeToken: moved.writeToken, key: moved.key, input: { type: 'user', text: `${canaries[2]} again` } });
  const after = await followToEnd(`${relay.url}/api/v2/runs/${resumed.id}/events`, moved.key);
  replies.push(...streamed('reply', after.messages));

  // The replies quote what the model generated: long enough to be canaries of their own.
  const needles = [...canaries, ...replies.filter((r) => r.length >= 16)];
  expect(needles.length).toBeGreaterThanOrEqual(canaries.length + 3);
  // The relay is still running: its SQLite write-ahead logs are on disk as they are.
  expect(await plaintextHits(dirs.dataDir, needles)).toEqual([]);
}, 240_000);
