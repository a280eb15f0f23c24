/**
 * Cloud workers in their own processes (`ferry worker --relay URL`) and what happens when one dies: a relay with no
 * worker of its own, two worker child processes on a generated model, a device session published and run. The
 * worker that has the run is killed with SIGKILL while it is generating; the relay notices the closed socket,
 * hands the run to the other worker, which resumes from the last checkpoint published on the snapshot. The run's
 * event stream — followed by a client the whole time — continues with the next seq and ends normally, and every
 * checkpoint acknowledged (published) before the kill is in the final session. The workers charge for output
 * tokens (`--price`), so every step they ran records its cost and none the device ran does.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import OpenAI from 'openai';
import { generateAll } from '../../src/core/llm/collect.ts';
import * as v from 'valibot';
import {
  ErrorBodySchema,
  RelayHttp,
  RunRecordSchema,
  WorkerListSchema,
  fetchSnapshot,
  publishSession,
  workerPaths,
} from '../../src/core/protocol/index.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session } from '../../src/core/session/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { openComponentLibrary, type ComponentLibrary } from '../../server/relay/component-library.ts';
import { startWorkerProcess, type WorkerProcess } from '../support/relay-process.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { followToEnd, runRequest } from './api/fake-worker.ts';

const componentsDir = path.join(path.resolve(import.meta.dirname, '..', '..'), 'components', 'dist');
const TOKEN = 'w'.repeat(43);

describe('ferry worker processes and failover', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let engine: Engine;
  let model: string;
  let library: ComponentLibrary;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    dirs = await makeTempDirs();
    model = await tinyModelFile();
    // No model: this relay runs no worker of its own; a short heartbeat so a hung worker would be noticed quickly.
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, heartbeatMs: 2000, componentDirs: [componentsDir] });
    [engine, library] = await Promise.all([tinyEngine(model), openComponentLibrary([componentsDir])]);
    // Free prompts, $1 per 1,000 output tokens: a step costs exactly 1,000 micro-dollars per token it generated.
    const args = ['--price', '0,1'];
    workers.push(...(await Promise.all(['alpha', 'beta'].map((name) => startWorkerProcess({ relayUrl: relay.url, token: TOKEN, name, model, dataDir: path.join(dirs.root, name), componentsDir, args })))));
  }, 180_000);

  afterAll(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await relay?.close();
    await engine?.dispose();
    await dirs?.cleanup();
  });

  const listWorkers = async () => v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json()).workers;
  const idOf = (name: string): string => {
    const dir = [...library.ids].find(([, d]) => path.basename(d) === name);
    if (!dir) throw new Error(`no built component ${name} in ${componentsDir}`);
    return dir[0];
  };

  test('workers attach with a measured profile; a wrong token is refused with a 4xx JSON error', async () => {
    const listed = await listWorkers();
    expect(listed.map((w) => w.profile.name).sort()).toEqual(['alpha', 'beta']);
    for (const w of listed) {
      expect(w).toMatchObject({ embedded: false, runs: 0, profile: { model: engine.info.model, tokenizer: engine.info.tokenizerId, engine: 'node-llama-cpp', slots: 1, price: { promptPer1k: 0, outputPer1k: 1 } } });
      expect(w.profile.decodeTps).toBeGreaterThan(0);
      expect(w.profile.prefillTps).toBeGreaterThan(0);
    }
    for (const [authorization, status, code] of [['Basic x', 401, 'relay/token-required'], [`Bearer ${'x'.repeat(43)}`, 403, 'relay/bad-token']] as const) {
      const res = await fetch(relay.url + workerPaths.connect, { headers: { authorization } });
      expect(res.status).toBe(status);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe(code);
    }
  });

  test('/v1 is served by the attached workers: the official openai client streams a completion identical to the engine\'s own; a client that leaves early does not hold up the next', async () => {
    // This relay has no model of its own: every /v1 answer comes from a `ferry worker` process over its socket.
    const client = new OpenAI({ baseURL: `${relay.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const models = await client.models.list();
    // Listed by name (the generated model is the demo model's bytes); asked for by its hash, as clients may.
    expect(models.data.map((m) => [m.id, (m as unknown as { ferry: { model: string } }).ferry.model])).toEqual([['demo', engine.info.model]]);
    const prompt = { messages: [{ role: 'user' as const, content: 'hello ferry' }], max_tokens: 24, temperature: 0 };
    const stream = await client.chat.completions.create({ model: engine.info.model, ...prompt, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    const local = await generateAll(engine, { prompt: { messages: prompt.messages }, maxTokens: 24, temperature: 0 });
    expect(text).toBe(local.text);
    expect(usage?.completion_tokens).toBe(24);

    // A client that gives up mid-stream (the relay tells the worker to cancel) does not hold up the next one.
    const long = await client.chat.completions.create({ model: engine.info.model, ...prompt, max_tokens: 3000, stream: true });
    let chunks = 0;
    for await (const _ of long) if (++chunks === 5) break;
    expect(chunks).toBe(5);
    const again = await client.chat.completions.create({ model: engine.info.model, ...prompt });
    expect(again.choices[0]!.message.content).toBe(local.text);

    // A model no worker serves: 404 naming the ones there are.
    await expect(client.chat.completions.create({ model: 'no-such-model', ...prompt })).rejects.toMatchObject({ status: 404 });
  });

  test('a malformed worker message closes that connection (1008) and the relay keeps serving', async () => {
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}${workerPaths.connect}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'hello', protocol: 1, profile: { name: 'evil' } }));
    const code = await new Promise<number>((resolve) => ws.once('close', resolve));
    expect(code).toBe(1008);
    expect((await listWorkers()).map((w) => w.profile.name).sort()).toEqual(['alpha', 'beta']);
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  });

  test('SIGKILL of the worker running a session mid-generation: the run moves, continues, and keeps every acknowledged step', async () => {
    // The device: the assistant agent with its tools; its first generation is cut at the first token, so the
    // session waits with that cut generation pending. The run then has a quick first step (the agent answers with
    // the cut text: a checkpoint, published) and a long second one (a generation of up to 600 tokens).
    const device = createMemoryStore();
    const setup = { engine, load: (id: string) => library.load(id), sampling: { maxTokens: 600, temperature: 0, seed: 0 } };
    const runtime = await AgentRuntime.create(device, setup, { agent: idOf('assistant'), tools: ['workspace', 'notes', 'js', 'docs'].map(idOf) });
    const cut = new AbortController();
    for await (const event of runtime.run({ type: 'start', task: 'Say hello.' }, cut.signal)) if (event.type === 'token') cut.abort();
    const sessionId = runtime.session.id;
    const deviceHead = runtime.head;
    await runtime.dispose();
    const published = await publishSession(device, sessionId, new RelayHttp({ baseUrl: relay.url }));

    const res = await runRequest(relay.url, published, { type: 'user', text: 'Tell me a long story about ferries.' });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const first = (await listWorkers()).find((w) => w.runs === 1);
    expect(first).toBeDefined();
    const victim = workers.find((w) => w.name === first!.profile.name)!;
    const survivor = workers.find((w) => w !== victim)!;

    // Follow the run; kill its worker at the first token after at least one checkpoint was acknowledged.
    const acknowledged: string[] = [];
    let killedAt: number | undefined;
    let checkpointed: string | undefined;
    const { messages } = await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, published.key, 0, (m) => {
      const e = m.event;
      if (killedAt !== undefined) return;
      if (e.type === 'checkpoint') checkpointed = e.id as string;
      if (e.type === 'published' && checkpointed) acknowledged.push(checkpointed);
      if (e.type === 'token' && acknowledged.length > 0) {
        killedAt = m.seq;
        victim.child.kill('SIGKILL');
      }
    });
    await victim.exited;
    expect(victim.child.signalCode).toBe('SIGKILL');
    expect(killedAt).toBeDefined();

    // One stream, no gaps: the kill, the move, the new worker resuming, the rest of the run.
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    const types = messages.map((m) => m.event.type);
    const lost = types.indexOf('worker-lost');
    expect(lost).toBeGreaterThan(killedAt!);
    expect(messages[lost + 1]?.event).toMatchObject({ type: 'reassigned', name: survivor.name, attempt: 2 });
    expect(messages[lost + 2]?.event).toMatchObject({ type: 'resumed', session: sessionId });
    expect(types.slice(lost)).toContain('checkpoint');
    expect(types).not.toContain('error');
    const final = v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run.id}`)).json());
    expect(final).toMatchObject({ status: 'idle', error: null, events: messages.length });

    // The session as the relay now holds it: every checkpoint acknowledged before the kill is in its history, and
    // the step the dead worker was in the middle of was done again by the survivor (its user message once).
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, device);
    const session = await Session.open(device, sessionId);
    const history = (await session.history()).map((h) => h.id);
    for (const id of acknowledged) expect(history).toContain(id);
    const lastCheckpoint = messages.filter((m) => m.event.type === 'checkpoint').at(-1)!.event.id;
    expect(history[0]).toBe(lastCheckpoint);
    const userTurns = (await session.history()).flatMap((h) => h.checkpoint.events).filter((e) => e.type === 'user' && e.text.includes('ferries'));
    expect(userTurns).toHaveLength(1);
    // What it cost: nothing for the device's steps, 1,000 micro-dollars per generated token for the workers' steps.
    const steps = (await session.history()).reverse().map((h) => h.checkpoint.counters);
    const onDevice = (await session.history(deviceHead)).length;
    expect(steps.slice(0, onDevice).every((c) => c.costMicros === 0)).toBe(true);
    for (let i = onDevice; i < steps.length; i++) expect(steps[i]!.costMicros - steps[i - 1]!.costMicros).toBe(1000 * (steps[i]!.tokens - steps[i - 1]!.tokens));
    expect(steps.at(-1)!.costMicros).toBeGreaterThan(0);
    expect((await listWorkers()).map((w) => w.profile.name)).toEqual([survivor.name]);
  }, 120_000);
});
