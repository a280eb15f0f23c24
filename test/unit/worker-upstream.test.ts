/**
 * A cloud worker on a serving cluster: `ferry worker --upstream <another Ferry relay's /v1> --model NAME` in its own
 * process, attached to a relay of its own. A device session runs on it end to end — streamed, cancelled by a hand
 * back mid-generation, its usage priced into each checkpoint, the upstream's token ids kept — and moves back to
 * the device, which continues the cut generation from its text on its own engine.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import { RelayHttp, RunRecordSchema, WorkerListSchema, fetchSnapshot, publishSession, startSealedRun, workerPaths, type OpenRunMessage } from '../../src/core/protocol/index.ts';
import { followRun, type StreamSocket } from '../../src/core/parallel/index.ts';
import { generateAll } from '../../src/core/llm/collect.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { createOpenAiEngine } from '../../server/llm/openai-engine.ts';
import { openComponentLibrary, type ComponentLibrary } from '../../server/relay/component-library.ts';
import { startWorkerProcess, type WorkerProcess } from '../support/relay-process.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

const componentsDir = path.join(path.resolve(import.meta.dirname, '..', '..'), 'components', 'dist');
const TOKEN = 'u'.repeat(43);

describe('ferry worker --upstream (an OpenAI-compatible serving cluster)', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  /** The serving cluster: a Ferry relay serving the model at /v1 and nothing else. */
  let cluster: TestRelay;
  /** The relay the worker attaches to and the device publishes to. */
  let relay: TestRelay;
  let engine: Engine;
  let library: ComponentLibrary;
  let served: string;
  let worker: WorkerProcess;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    const model = await tinyModelFile();
    cluster = await startTestRelay({ staticDir: dirs.staticDir, dataDir: path.join(dirs.root, 'cluster'), model, embeddedWorker: false });
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, componentDirs: [componentsDir] });
    [engine, library] = await Promise.all([tinyEngine(model), openComponentLibrary([componentsDir])]);
    served = ((await (await fetch(`${cluster.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    // Free prompts, $1 per 1,000 output tokens: a step costs exactly 1,000 micro-dollars per token it generated.
    worker = await startWorkerProcess({ relayUrl: relay.url, token: TOKEN, name: 'cluster', model: served, dataDir: path.join(dirs.root, 'worker'), componentsDir, args: ['--upstream', `${cluster.url}/v1`, '--price', '0,1'] });
  }, 180_000);

  afterAll(async () => {
    await worker?.stop();
    await Promise.all([relay?.close(), cluster?.close()]);
    await engine?.dispose();
    await dirs?.cleanup();
  });

  test('the upstream engine streams what the model generates, with its token ids and usage', async () => {
    const remote = await createOpenAiEngine({ baseUrl: `${cluster.url}/v1`, model: served });
    const prompt = { messages: [{ role: 'user' as const, content: 'hello ferry' }] };
    const direct = await generateAll(engine, { prompt, maxTokens: 20, temperature: 0 });
    const ids: (number | null)[] = [];
    const via = await generateAll(remote, { prompt, maxTokens: 20, temperature: 0 }, (e) => ids.push(e.id));
    expect(via.text).toBe(direct.text);
    expect(via.tokens).toEqual(direct.tokens);
    expect(ids).toEqual(direct.tokens);
    expect(via.stats).toMatchObject({ promptTokens: direct.stats.promptTokens, completionTokens: 20 });
  });

  test('it attaches with a profile measured on the upstream, and a wrong model name stops it with the fix', async () => {
    const listed = v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json()).workers;
    expect(listed).toHaveLength(1);
    expect(listed[0]!.profile).toMatchObject({ name: 'cluster', model: served, engine: 'openai', tokenizer: '', device: `${cluster.url}/v1`, price: { promptPer1k: 0, outputPer1k: 1 } });
    expect(listed[0]!.profile.decodeTps).toBeGreaterThan(0);
    const wrong = await startWorkerProcess({ relayUrl: relay.url, token: TOKEN, name: 'wrong', model: 'no-such-model', dataDir: path.join(dirs.root, 'wrong'), componentsDir, args: ['--upstream', `${cluster.url}/v1`] }).catch((e: unknown) => e);
    expect(String(wrong)).toContain(`does not serve "no-such-model"; it serves: ${served}.`);
  });

  test('a session runs on it, is handed back mid-generation with its cost recorded, and the device finishes the reply', async () => {
    const device = createMemoryStore();
    const load = (id: string) => library.load(id);
    const setup = { engine, load, sampling: { maxTokens: 400, temperature: 0, seed: 0 } };
    const idOf = (name: string): string => [...library.ids].find(([, d]) => path.basename(d) === name)![0];
    const runtime = await AgentRuntime.create(device, setup, { agent: idOf('assistant'), tools: [] });
    const sessionId = runtime.session.id;
    await runtime.dispose();
    const http = new RelayHttp({ baseUrl: relay.url });
    const published = await publishSession(device, sessionId, http);

    const run = await startSealedRun(http, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input: { type: 'start', task: 'Tell me a long story about ferries.' } });

    // Follow the run; hand it back once the upstream has streamed a few tokens of the reply.
    let stopping: Promise<unknown> | undefined;
    const messages: OpenRunMessage[] = [];
    await followRun(http, run.id, (m) => {
      messages.push(m);
      if (m.event.type === 'token' && messages.filter((s) => s.event.type === 'token').length === 8) stopping ??= http.stopRun(run.id, published.writeToken);
    }, { key: published.key, open: (url, protocols) => new WebSocket(url, protocols) as unknown as StreamSocket });
    await stopping;
    const types = messages.map((m) => m.event.type);
    expect(types.filter((t) => t === 'token').length).toBeGreaterThanOrEqual(8);
    expect(types).toContain('checkpoint');
    expect(types).not.toContain('error');
    await vi.waitFor(async () => expect(v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run.id}`)).json()).status).toBe('stopped'));

    // Back on the device: the worker's step is there, cut, remote, its ids kept and its output tokens priced.
    await fetchSnapshot(http, published.snapshot.id, published.key, device);
    const history = (await (await Session.open(device, sessionId)).history()).reverse();
    const generations = history.flatMap((h) => h.checkpoint.events).filter((e) => e.type === 'generation');
    expect(generations).toHaveLength(1);
    const cut = generations[0]!;
    expect(cut).toMatchObject({ finish: 'abort', engine: { id: 'openai', kind: 'remote', model: served } });
    expect(cut.tokens.length).toBeGreaterThanOrEqual(8);
    // (SentencePiece drops the leading space of a detokenized piece.)
    expect((await engine.detokenize(cut.tokens)).trimStart()).toBe(cut.text.trimStart());
    const last = history.at(-1)!.checkpoint;
    expect(last.counters.costMicros).toBe(1000 * last.counters.tokens);
    expect(last.counters.tokens).toBe(cut.tokens.length);

    // The checkpoint says how the cut generation continues: the upstream's tokenizer is unknown, so from its text.
    const resumed = await AgentRuntime.open(device, setup, sessionId);
    expect(resumed.loopState.cut).toMatchObject({ tokenizerId: '', tokens: cut.tokens, text: cut.text });
    // The device continues it from that text on its own engine, and the reply completes.
    let reply = '';
    for await (const event of resumed.run({ type: 'resume' })) if (event.type === 'generation') reply = event.text;
    await resumed.dispose();
    const all = (await (await Session.open(device, sessionId)).history()).reverse().flatMap((h) => h.checkpoint.events).filter((e) => e.type === 'generation');
    expect(all).toHaveLength(2);
    expect(all[1]!.engine.kind).toBe('native');
    expect(reply.length).toBeGreaterThan(0);
  }, 120_000);
});
