/**
 * The runs API on the relay's embedded worker: a device publishes an agent session, the worker resumes it from
 * the snapshot with the key the device sealed to it, runs a user turn (node-llama-cpp, tiny generated model),
 * checkpoints and publishes every step back to the same snapshot, and streams its events — sealed with the session
 * key — over a WebSocket that a client with the run's capability can rejoin from any seq. The device then takes
 * the session back from the snapshot and continues it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import { ErrorBodySchema, RelayHttp, RunRecordSchema, fetchSnapshot, publishSession, toBase64Url, type OpenRunMessage, type PublishResult } from '../../src/core/protocol/index.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, turn, type Fixtures } from '../support/runtime-agent.ts';
import { RelayRunner, type RunnerEvent } from '../../src/core/host/index.ts';
import type { StreamSocket } from '../../src/core/parallel/index.ts';
import { Session } from '../../src/core/session/index.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { followToEnd, postRun, runBody } from './api/fake-worker.ts';

type RunMessage = OpenRunMessage;

const follow = (url: string, key: Uint8Array, from = 0, onMessage?: (m: RunMessage) => void) => followToEnd(url, key, from, onMessage);

describe('runs on the embedded cloud worker', () => {
  let f: Fixtures;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let engine: Engine;
  let published: PublishResult;
  let sessionId: string;
  const device = createMemoryStore();

  beforeAll(async () => {
    f = await fixtures();
    dirs = await makeTempDirs();
    const model = await tinyModelFile();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: Object.values(f.dirs) });
    engine = await tinyEngine(model);
    // The device: a session with one turn, published.
    const runtime = await AgentRuntime.create(device, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'hello world', true);
    sessionId = runtime.session.id;
    await runtime.dispose();
    published = await publishSession(device, sessionId, new RelayHttp({ baseUrl: relay.url }));
  }, 180_000);

  afterAll(async () => {
    await relay?.close();
    await (engine as { dispose?: () => Promise<void> } | undefined)?.dispose?.();
    await dirs?.cleanup();
  });

  let firstRun: { id: string; messages: RunMessage[] } | undefined;
  const startRun = (body: unknown) => postRun(relay.url, body);

  test('the worker resumes the snapshot, runs a turn, publishes every checkpoint, and the device takes it back', async () => {
    const res = await startRun(await runBody(relay.url, published, { type: 'user', text: 'tell me a story' }));
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages, code } = await follow(`${relay.url}/api/v2/runs/${run.id}/events`, published.key);
    expect(code).toBe(1000);
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    const types = messages.map((m) => m.event.type);
    expect(types[0]).toBe('resumed');
    expect(types).toContain('token');
    expect(types).toContain('checkpoint');
    expect(types).toContain('published');
    expect(types).not.toContain('error');
    const final = v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run.id}`)).json());
    expect(final).toMatchObject({ status: 'idle', events: messages.length, error: null });

    // The snapshot now ends at the worker's last checkpoint; the device fetches it and continues from there.
    const checkpoints = messages.filter((m) => m.event.type === 'checkpoint').map((m) => m.event.id as string);
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, device);
    const back = await AgentRuntime.open(device, setupFor(f, engine), sessionId);
    expect(back.head).toBe(checkpoints.at(-1));
    const next = await turn(back, 'once upon a time');
    expect(next.events.some((e) => e.type === 'checkpoint')).toBe(true);
    await back.dispose();

    // A client that reconnects from seq n gets exactly the events from n on.
    const tail = await follow(`${relay.url}/api/v2/runs/${run.id}/events`, published.key, 3);
    expect(tail.messages).toEqual(messages.slice(3));
    firstRun = { id: run.id, messages };
  });

  test('stop hands the session back mid-generation: the step is cut, checkpointed and published; the run ends "stopped"', async () => {
    // A session whose recorded sampling allows a long generation, so the stop lands while tokens are flowing.
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine, { sampling: { maxTokens: 3000, temperature: 0, seed: 0 } }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await runtime.dispose();
    const p = await publishSession(store, runtime.session.id, new RelayHttp({ baseUrl: relay.url }));
    const res = await startRun(await runBody(relay.url, p, { type: 'start', task: 'tell me a long story' }));
    const run = v.parse(RunRecordSchema, await res.json());
    let stop: Promise<unknown> | undefined;
    const { messages } = await follow(`${relay.url}/api/v2/runs/${run.id}/events`, p.key, 0, (m) => {
      if (m.event.type === 'token' && !stop) {
        stop = fetch(`${relay.url}/api/v2/runs/${run.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${p.writeToken}` } }).then((r) => r.json());
      }
    });
    const stopped = { messages, stop: await stop };
    expect(v.parse(RunRecordSchema, stopped.stop)).toMatchObject({ status: 'stopped' });
    const types = stopped.messages.map((m) => m.event.type);
    const generation = stopped.messages.find((m) => m.event.type === 'generation')?.event;
    expect(generation?.finishReason).toBe('cancelled');
    expect((generation?.tokens as number[]).length).toBeLessThan(3000);
    expect(types.indexOf('checkpoint')).toBeGreaterThan(types.indexOf('generation'));
    expect(types.indexOf('published')).toBeGreaterThan(types.indexOf('checkpoint'));
    expect(stopped.messages.at(-1)?.event).toMatchObject({ type: 'paused', reason: 'cancelled' });
    const record = await new RelayHttp({ baseUrl: relay.url }).getSnapshot(p.snapshot.id);
    expect(record.version).toBeGreaterThan(p.snapshot.version);
  });

  test('a run keeps to the reply length its sender gives, whatever the session recorded', async () => {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine, { sampling: { maxTokens: 3000, temperature: 0, seed: 0 } }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await runtime.dispose();
    const p = await publishSession(store, runtime.session.id, new RelayHttp({ baseUrl: relay.url }));
    const res = await startRun({ ...(await runBody(relay.url, p, { type: 'start', task: 'tell me a long story' })), maxTokens: 7 });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages } = await follow(`${relay.url}/api/v2/runs/${run.id}/events`, p.key);
    const generations = messages.filter((m) => m.event.type === 'generation').map((m) => m.event as unknown as { tokens: number[]; finishReason: string });
    expect(generations.length).toBeGreaterThan(0);
    for (const g of generations) expect(g.tokens.length).toBeLessThanOrEqual(7);
    expect(generations.some((g) => g.finishReason === 'length' && g.tokens.length === 7)).toBe(true);
  });

  test('bad run requests get 4xx JSON: schema, token, unknown ids; the relay keeps serving', async () => {
    const ok = await runBody(relay.url, published, { type: 'resume' });
    const cases: [unknown, number, string][] = [
      [{ ...ok, input: { type: 'shout' } }, 400, 'protocol/bad-request'],
      [{ ...ok, input: { type: 'user', text: 'plain text is not sealed' } }, 400, 'protocol/bad-request'],
      [{ ...ok, key: toBase64Url(published.key) }, 400, 'protocol/bad-request'],
      [{ ...ok, keys: { short: 'short' } }, 400, 'protocol/bad-request'],
      [{ ...ok, readVerifier: undefined }, 400, 'protocol/bad-request'],
      [{ ...ok, keys: {} }, 503, 'relay/no-worker'],
      [{ ...ok, maxTokens: 0 }, 400, 'protocol/bad-request'],
      [{ ...ok, maxTokens: 1.5 }, 400, 'protocol/bad-request'],
      [{ ...ok, maxTokens: 1e9 }, 400, 'protocol/bad-request'],
      [{ ...ok, writeToken: 'A'.repeat(43) }, 403, 'relay/bad-token'],
      [{ ...ok, snapshot: 'ab'.repeat(20) }, 404, 'relay/unknown-snapshot'],
    ];
    for (const [body, status, code] of cases) {
      const res = await startRun(body);
      expect(res.status).toBe(status);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe(code);
    }
    for (const [url, status, code] of [
      [`/api/v2/runs/${'cd'.repeat(16)}`, 404, 'relay/unknown-run'],
      [`/api/v2/runs/nope`, 400, 'protocol/bad-request'],
      [`/api/v2/runs/${'cd'.repeat(16)}/events`, 404, 'relay/unknown-run'],
      [`/api/v2/runs/${firstRun!.id}/events`, 401, 'relay/capability-required'],
    ] as const) {
      const res = await fetch(relay.url + url);
      expect(res.status).toBe(status);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe(code);
    }
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  });

  test('a wrong key fails the run with a typed error, and nothing is published', async () => {
    const before = await new RelayHttp({ baseUrl: relay.url }).getSnapshot(published.snapshot.id);
    const wrong = { ...published, key: new Uint8Array(32).fill(1) };
    const res = await startRun(await runBody(relay.url, wrong, { type: 'resume' }));
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages } = await follow(`${relay.url}/api/v2/runs/${run.id}/events`, wrong.key);
    expect(messages.at(-1)?.event).toMatchObject({ type: 'error', code: 'snapshot/wrong-key' });
    expect(v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v2/runs/${run.id}`)).json())).toMatchObject({ status: 'failed', error: { code: 'snapshot/wrong-key' } });
    expect(await new RelayHttp({ baseUrl: relay.url }).getSnapshot(published.snapshot.id)).toEqual(before);
  });

  test('a relay restart keeps every run record and its whole event stream', async () => {
    expect(firstRun).toBeDefined();
    const before = await (await fetch(`${relay.url}/api/v2/runs/${firstRun!.id}`)).json();
    relay = await relay.restart();
    expect(await (await fetch(`${relay.url}/api/v2/runs/${firstRun!.id}`)).json()).toEqual(before);
    expect((await follow(`${relay.url}/api/v2/runs/${firstRun!.id}/events`, published.key)).messages).toEqual(firstRun!.messages);
  });

  test('a relay runner moves a session to the cloud, follows its stream into the local store, and takes it back', async () => {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'hello world', true);
    await runtime.dispose();
    const events: RunnerEvent[] = [];
    const cloud = new RelayRunner({ sessionId: runtime.session.id, store, relay: new RelayHttp({ baseUrl: relay.url }), onEvent: (e) => events.push(e), openSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as StreamSocket });
    await cloud.send({ type: 'user', text: 'the agent and the model' });
    // Every checkpoint the cloud made was announced only once it was in this store, the last being the head.
    const last = events.filter((e) => e.type === 'checkpoint').at(-1);
    expect(last).toBeDefined();
    const head = await (await Session.open(store, runtime.session.id)).head();
    expect(last).toMatchObject({ id: head });
    // Stopping after the run has ended is harmless, and the session opens here at that head.
    await cloud.stop();
    await cloud.close();
    const back = await AgentRuntime.open(store, setupFor(f, engine), runtime.session.id);
    expect(back.head).toBe(head);
    await back.dispose();
  });
});
