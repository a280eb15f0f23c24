/**
 * The runs API on the relay's embedded worker: a device publishes an agent session, the worker resumes it from
 * the snapshot with the key the device handed it, runs a user turn (node-llama-cpp, tiny generated model),
 * checkpoints and publishes every step back to the same snapshot, and streams its events over a WebSocket that a
 * client can rejoin from any seq. The device then takes the session back from the snapshot and continues it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import * as v from 'valibot';
import { ErrorBodySchema, RelayHttp, parseShareLink, RunMessageSchema, RunRecordSchema, fetchSnapshot, publishSession, toBase64Url, type PublishResult, type RunMessage } from '../../src/core/protocol/index.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, turn, type Fixtures } from '../support/runtime-agent.ts';
import { RelayClient } from '../../src/browser/relay-client.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

/** Every message of a run's event stream from `from`, until the relay closes it at the end of the run. */
function follow(url: string, from = 0): Promise<{ messages: RunMessage[]; code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}?from=${from}`);
    const messages: RunMessage[] = [];
    ws.on('message', (data) => messages.push(v.parse(RunMessageSchema, JSON.parse(String(data)))));
    ws.on('close', (code) => resolve({ messages, code }));
    ws.on('error', reject);
  });
}

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
  const startRun = (body: unknown) => fetch(`${relay.url}/api/v1/runs`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  test('the worker resumes the snapshot, runs a turn, publishes every checkpoint, and the device takes it back', async () => {
    const res = await startRun({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'user', text: 'tell me a story' } });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages, code } = await follow(`${relay.url}/api/v1/runs/${run.id}/events`);
    expect(code).toBe(1000);
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    const types = messages.map((m) => m.event.type);
    expect(types[0]).toBe('resumed');
    expect(types).toContain('token');
    expect(types).toContain('checkpoint');
    expect(types).toContain('published');
    expect(types).not.toContain('error');
    const final = v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v1/runs/${run.id}`)).json());
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
    const tail = await follow(`${relay.url}/api/v1/runs/${run.id}/events`, 3);
    expect(tail.messages).toEqual(messages.slice(3));
    firstRun = { id: run.id, messages };
  });

  test('stop hands the session back mid-generation: the step is cut, checkpointed and published; the run ends "stopped"', async () => {
    // A session whose recorded sampling allows a long generation, so the stop lands while tokens are flowing.
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine, { sampling: { maxTokens: 3000, temperature: 0, seed: 0 } }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await runtime.dispose();
    const p = await publishSession(store, runtime.session.id, new RelayHttp({ baseUrl: relay.url }));
    const res = await startRun({ snapshot: p.snapshot.id, key: toBase64Url(p.key), writeToken: p.writeToken, input: { type: 'start', task: 'tell me a long story' } });
    const run = v.parse(RunRecordSchema, await res.json());
    const stopped = await new Promise<{ messages: RunMessage[]; stop: unknown }>((resolve, reject) => {
      const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/api/v1/runs/${run.id}/events`);
      const messages: RunMessage[] = [];
      let stop: Promise<unknown> | undefined;
      ws.on('message', (data) => {
        const m = v.parse(RunMessageSchema, JSON.parse(String(data)));
        messages.push(m);
        if (m.event.type === 'token' && !stop) {
          stop = fetch(`${relay.url}/api/v1/runs/${run.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${p.writeToken}` } }).then((r) => r.json());
        }
      });
      ws.on('close', () => void (stop ?? Promise.resolve(undefined)).then((s) => resolve({ messages, stop: s })));
      ws.on('error', reject);
    });
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
    const res = await startRun({ snapshot: p.snapshot.id, key: toBase64Url(p.key), writeToken: p.writeToken, input: { type: 'start', task: 'tell me a long story' }, maxTokens: 7 });
    expect(res.status).toBe(202);
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages } = await follow(`${relay.url}/api/v1/runs/${run.id}/events`);
    const generations = messages.filter((m) => m.event.type === 'generation').map((m) => m.event as unknown as { tokens: number[]; finishReason: string });
    expect(generations.length).toBeGreaterThan(0);
    for (const g of generations) expect(g.tokens.length).toBeLessThanOrEqual(7);
    expect(generations.some((g) => g.finishReason === 'length' && g.tokens.length === 7)).toBe(true);
  });

  test('bad run requests get 4xx JSON: schema, token, unknown ids; the relay keeps serving', async () => {
    const ok = { snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'resume' } };
    const cases: [unknown, number, string][] = [
      [{ ...ok, input: { type: 'shout' } }, 400, 'protocol/bad-request'],
      [{ ...ok, key: 'short' }, 400, 'protocol/bad-request'],
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
      [`/api/v1/runs/${'cd'.repeat(16)}`, 404, 'relay/unknown-run'],
      [`/api/v1/runs/nope`, 400, 'protocol/bad-request'],
      [`/api/v1/runs/${'cd'.repeat(16)}/events`, 404, 'relay/unknown-run'],
    ] as const) {
      const res = await fetch(relay.url + url);
      expect(res.status).toBe(status);
      expect(v.parse(ErrorBodySchema, await res.json()).error.code).toBe(code);
    }
    expect((await fetch(`${relay.url}/healthz`)).status).toBe(200);
  });

  test('a wrong key fails the run with a typed error, and nothing is published', async () => {
    const before = await new RelayHttp({ baseUrl: relay.url }).getSnapshot(published.snapshot.id);
    const res = await startRun({ snapshot: published.snapshot.id, key: toBase64Url(new Uint8Array(32).fill(1)), writeToken: published.writeToken, input: { type: 'resume' } });
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages } = await follow(`${relay.url}/api/v1/runs/${run.id}/events`);
    expect(messages.at(-1)?.event).toMatchObject({ type: 'error', code: 'snapshot/wrong-key' });
    expect(v.parse(RunRecordSchema, await (await fetch(`${relay.url}/api/v1/runs/${run.id}`)).json())).toMatchObject({ status: 'failed', error: { code: 'snapshot/wrong-key' } });
    expect(await new RelayHttp({ baseUrl: relay.url }).getSnapshot(published.snapshot.id)).toEqual(before);
  });

  test('a relay restart keeps every run record and its whole event stream', async () => {
    expect(firstRun).toBeDefined();
    const before = await (await fetch(`${relay.url}/api/v1/runs/${firstRun!.id}`)).json();
    relay = await relay.restart();
    expect(await (await fetch(`${relay.url}/api/v1/runs/${firstRun!.id}`)).json()).toEqual(before);
    expect((await follow(`${relay.url}/api/v1/runs/${firstRun!.id}/events`)).messages).toEqual(firstRun!.messages);
  });

  test('the browser relay client moves a session to the cloud, follows its stream, and takes it back', async () => {
    const client = new RelayClient(relay.url);
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'hello world', true);
    await runtime.dispose();
    const shared = await client.publish(store, runtime.session.id);
    const run = await client.resumeOnCloud(shared, { type: 'user', text: 'the agent and the model' });
    const seen: RunMessage[] = [];
    await client.followRun(run.id, (m) => seen.push(m), { WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
    expect(seen.map((m) => m.seq)).toEqual(seen.map((_, i) => i));
    const last = seen.filter((m) => m.event.type === 'checkpoint').at(-1)?.event.id;
    expect(last).toBeDefined();
    expect((await client.http.getRun(run.id)).status).toBe('idle');
    // Stopping a run that has already ended is harmless and answers its record.
    expect((await client.handBack(run.id, shared)).status).toBe('idle');
    await client.open(parseShareLink(shared.link), store);
    const back = await AgentRuntime.open(store, setupFor(f, engine), runtime.session.id);
    expect(back.head).toBe(last);
    await back.dispose();
  });
});
