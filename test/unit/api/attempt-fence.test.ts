/**
 * The relay's fence on workers' publishes (ATTEMPT_HEADER): a run's checkpoints are taken only from its current
 * attempt, so a worker the relay gave up on cannot land one after the run moved on or ended. Against a real relay
 * whose embedded worker runs a session on the tiny generated model.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import {
  ATTEMPT_HEADER,
  RelayHttp,
  RunRecordSchema,
  fetchSnapshot,
  publishSession,
  type PublishResult,
} from '../../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { Session } from '../../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { tinyEngine, tinyModelFile } from '../../support/runtime-agent.ts';
import { refusal } from '../../support/refusal.ts';
import { chatStep } from '../../support/session-fixtures.ts';
import { componentsDir, generatedSources, surveyComponents } from '../parallel/space-nodes.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './relay-harness.ts';
import { followToEnd, postRun, runBody } from './fake-worker.ts';

describe("the relay takes a run's checkpoints only from its current attempt", () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let store: Store;
  let sessionId: string;
  let published: PublishResult;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    const parts = await surveyComponents();
    const model = await tinyModelFile();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: [componentsDir], embeddedWorker: true });
    const engine = await tinyEngine(model);
    store = createMemoryStore();
    const made = await AgentRuntime.create(store, { engine, load: (id) => parts.library.load(id), sampling: { maxTokens: 16, temperature: 0, seed: 0 } }, { agent: parts.survey, tools: [parts.docs, parts.notes] });
    sessionId = made.session.id;
    await made.dispose();
    await engine.dispose();
    published = await publishSession(store, sessionId, new RelayHttp({ baseUrl: relay.url }));
  }, 300_000);

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  /** Publishes this store's session over the snapshot, as a worker of `attempt` would (no header: as the device). */
  async function publishAs(attempt: string | undefined) {
    const fetched = createMemoryStore();
    const plain = new RelayHttp({ baseUrl: relay.url });
    const { base } = await fetchSnapshot(plain, published.snapshot.id, published.key, fetched);
    // Something new to publish (an unchanged session sends nothing at all).
    await (await Session.open(fetched, sessionId)).append(chatStep(attempt?.length ?? 0));
    const http = attempt === undefined ? plain : new RelayHttp({
      baseUrl: relay.url,
      fetch: (input, init) => {
        const headers = new Headers(init?.headers);
        headers.set(ATTEMPT_HEADER, attempt);
        return globalThis.fetch(input, { ...init, headers });
      },
    });
    return publishSession(fetched, sessionId, http, { snapshotId: published.snapshot.id, writeToken: published.writeToken, key: published.key, base });
  }

  test('the worker running attempt 1 publishes every checkpoint; once the run has ended, that attempt is refused', async () => {
    const task = JSON.stringify({ topic: 'working harbours', sources: generatedSources(2) });
    const res = await postRun(relay.url, await runBody(relay.url, published, { type: 'start', task }));
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const types = (await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, published.key)).messages.map((m) => m.event.type);
    const record = v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run.id}`)).json());
    expect(record.status, JSON.stringify(record.error)).toBe('done');
    // Attempt 1 was current while it ran: each of its checkpoints was published (the fence let them through).
    expect(types.filter((t) => t === 'published').length).toBe(types.filter((t) => t === 'checkpoint').length);
    expect(types.filter((t) => t === 'published').length).toBeGreaterThan(0);

    // The run is over: a late publish of attempt 1 (or one of an attempt that never was) is refused…
    expect((await refusal(() => publishAs(`${run.id}/1`))).code).toBe('relay/attempt-superseded');
    expect((await refusal(() => publishAs(`${run.id}/7`))).code).toBe('relay/attempt-superseded');
    expect((await refusal(() => publishAs('not-a-run/1'))).code).toBe('protocol/bad-request');
    // …while the device, which names no attempt, may publish with its write token as before.
    const mine = await publishAs(undefined);
    expect(mine.snapshot.id).toBe(published.snapshot.id);
  }, 300_000);
});
