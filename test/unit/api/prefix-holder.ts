/**
 * A session that ran on a worker holding its prefix, for the held-prefix tests: a real relay (worker token, no model
 * of its own), one worker attached to it (NodeLink + RunHost on a node-llama-cpp engine, the generated tiny model),
 * and a device engine on the same model whose session was published there. `runThere` runs a turn of it on the worker.
 */
import * as v from 'valibot';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { NodeLink, type LinkSocket } from '../../../src/core/host/node-link.ts';
import { measureProfile } from '../../../src/core/host/measure-profile.ts';
import { RunHost } from '../../../src/core/host/run-host.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { RelayHttp, RunRecordSchema, WorkerListSchema, createWorkerKeys, publishSession, workerPaths, type PublishResult, type WorkerList } from '../../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { fixtures, loader, setupFor, tinyEngine, tinyModelFile, turn } from '../../support/runtime-agent.ts';
import { followToEnd, postRun, runBody } from './fake-worker.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './relay-harness.ts';

const TOKEN = 'k'.repeat(43);

export interface PrefixHolder {
  relay: TestRelay;
  /** The worker's engine (its slots hold what its runs left). */
  worker: Engine;
  /** The device's engine, on the same model (its owner is the rig: hand it on with keptHandle). */
  device: Engine;
  /** The device's store, holding the session. */
  store: Store;
  sessionId: string;
  published: PublishResult;
  listWorkers(): Promise<WorkerList>;
  /** One user turn of the session, run on the worker to its end. */
  runThere(text: string): Promise<void>;
  close(): Promise<void>;
}

export async function openPrefixHolder(): Promise<PrefixHolder> {
  const f = await fixtures();
  const dirs = await makeTempDirs();
  const model = await tinyModelFile();
  const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, componentDirs: Object.values(f.dirs) });
  const [device, worker] = await Promise.all([tinyEngine(model), tinyEngine(model)]);
  const host = new RunHost({ engine: worker, keys: await createWorkerKeys(), load: loader(f), relayUrl: () => relay.url });
  const link = new NodeLink({
    relayUrl: relay.url,
    host,
    profile: await measureProfile(worker, { name: 'holder', slots: 1 }),
    open: (url) => new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } }) as unknown as LinkSocket,
    log: () => undefined,
  });
  await link.start(() => undefined);
  const store = createMemoryStore();
  const runtime = await AgentRuntime.create(store, setupFor(f, device), { agent: f.ids.scribe, tools: [f.ids.tally] });
  await turn(runtime, 'hello world', true);
  const sessionId = runtime.session.id;
  await runtime.dispose();
  const published = await publishSession(store, sessionId, new RelayHttp({ baseUrl: relay.url }));
  return {
    relay,
    worker,
    device,
    store,
    sessionId,
    published,
    listWorkers: async () => v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json()),
    async runThere(text) {
      const res = await postRun(relay.url, await runBody(relay.url, published, { type: 'user', text }));
      expect(res.status).toBe(202);
      const run = v.parse(RunRecordSchema, await res.json());
      expect((await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, published.key)).code).toBe(1000);
    },
    async close() {
      await link.close();
      await relay.close();
      await Promise.all([device.dispose(), worker.dispose()]);
      await dirs.cleanup();
    },
  };
}

/** One holder for the enclosing describe block, opened before its tests and closed after them. */
export function usePrefixHolder(): () => PrefixHolder {
  let rig: PrefixHolder | undefined;
  beforeAll(async () => {
    rig = await openPrefixHolder();
  }, 180_000);
  afterAll(async () => {
    await rig?.close();
  });
  return () => rig!;
}
