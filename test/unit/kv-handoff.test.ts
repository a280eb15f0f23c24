/**
 * KV shipping (issue 6): a session runs on host A (node-llama-cpp, tiny generated model), is stopped mid-generation
 * — the checkpoint that ends the run carries the slot's KV — and host B, another engine instance, resumes it:
 * same model file → the KV is loaded and the continuation's prompt is all cached; another model file or a damaged
 * KV entry → re-prefill with a `kv` event saying why. Either way the generation is token-identical to one that never
 * moved. Then the same move through the relay: a run on the embedded worker is stopped (hand back) and the next
 * run resumes it with the KV loaded.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import type { Engine } from '../../src/core/llm/engine.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { RelayHttp, RunRecordSchema, fetchSnapshot, publishSession, type OpenRunMessage, type PublishResult } from '../../src/core/protocol/index.ts';
import { decodeKvEntry, encodeKvEntry, kvComponentName, kvPays, type KvEvent } from '../../src/core/runtime/kv-handoff.ts';
import { kvFormatOf } from '../../src/core/llm/kv-state.ts';
import { AgentRuntime, type RuntimeEvent } from '../../src/core/runtime/runtime.ts';
import { createMemoryStore, type Store } from '../../src/core/store/index.ts';
import { recording } from '../support/recording-engine.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, type Fixtures } from '../support/runtime-agent.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { followToEnd, postRun, runBody } from './api/fake-worker.ts';

const TASK = 'ferry river harbour crossing tide deck rope lantern ferry river harbour crossing tide deck rope lantern';
const SAMPLING = { maxTokens: 64, temperature: 0, seed: 0 };
/** The scribe asks for 8 tokens a generation: cut in the middle. */
const CUT_AFTER = 4;

async function collect(run: AsyncGenerator<RuntimeEvent>, cutAfter?: AbortController): Promise<RuntimeEvent[]> {
  const events: RuntimeEvent[] = [];
  let tokens = 0;
  for await (const event of run) {
    events.push(event);
    if (event.type === 'token' && ++tokens === CUT_AFTER) cutAfter?.abort();
  }
  return events;
}

const generated = (events: RuntimeEvent[]): number[] => events.flatMap((e) => (e.type === 'generation' ? e.tokens : []));
const kvEvents = (events: readonly { type: string }[]): KvEvent[] => events.filter((e): e is KvEvent => e.type === 'kv');

describe('KV handoff between hosts', () => {
  let f: Fixtures;
  let model: string;
  let engineA: Engine;
  let engineB: Engine;
  let reference: number[];

  beforeAll(async () => {
    f = await fixtures();
    model = await tinyModelFile();
    [engineA, engineB] = await Promise.all([tinyEngine(model), tinyEngine(model)]);
    // The generation as it goes when nothing moves (its own engine instance, so no cache is shared).
    const ref = await tinyEngine(model);
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, ref, { sampling: SAMPLING }), { agent: f.ids.scribe });
    reference = generated(await collect(runtime.run({ type: 'start', task: TASK })));
    await runtime.dispose();
    await ref.dispose();
    expect(reference.length).toBeGreaterThan(CUT_AFTER);
  }, 180_000);

  afterAll(async () => {
    await engineA?.dispose();
    await engineB?.dispose();
  });

  /** Host A starts the task and is stopped after CUT_AFTER tokens: the ending checkpoint holds the KV. */
  async function stopOnA(store: Store): Promise<{ sessionId: string; cut: number[]; saved: KvEvent }> {
    const runtime = await AgentRuntime.create(store, setupFor(f, engineA, { sampling: SAMPLING, kv: { save: true } }), { agent: f.ids.scribe });
    const stop = new AbortController();
    const events = await collect(runtime.run({ type: 'start', task: TASK }, stop.signal), stop);
    await runtime.dispose();
    const saved = kvEvents(events);
    expect(saved).toHaveLength(1);
    expect(saved[0]).toMatchObject({ action: 'saved' });
    // The KV event streams right after the checkpoint it went into.
    expect(events[events.findIndex((e) => e.type === 'kv') - 1]?.type).toBe('checkpoint');
    return { sessionId: runtime.session.id, cut: generated(events), saved: saved[0]! };
  }

  async function resumeOn(store: Store, sessionId: string, engine: Engine) {
    const rec = recording(engine);
    const runtime = await AgentRuntime.open(store, setupFor(f, rec, { sampling: SAMPLING, kv: {} }), sessionId);
    const events = await collect(runtime.run({ type: 'resume' }));
    await runtime.dispose();
    return { events, kv: kvEvents(events), stats: rec.stats };
  }

  test('same model file on another engine: the KV is loaded, the prompt is all cached, the continuation is identical', async () => {
    const store = createMemoryStore();
    const { sessionId, cut, saved } = await stopOnA(store);
    expect(cut.length).toBeLessThan(reference.length);
    const b = await resumeOn(store, sessionId, engineB);
    expect(b.kv).toHaveLength(1);
    expect(b.kv[0]).toMatchObject({ action: 'loaded', tokens: saved.tokens, bytes: saved.bytes });
    // The continuation's prompt is the cut's prompt + its ids; all but the last id were in the shipped KV.
    expect(b.stats[0]!.cachedTokens).toBe(saved.tokens);
    expect(b.stats[0]!.promptTokens).toBe(saved.tokens + 1);
    expect([...cut, ...generated(b.events)]).toEqual(reference);
  });

  test('another model file: re-prefill, said in a kv event, and still the same tokens (same weights)', async () => {
    const store = createMemoryStore();
    const { sessionId, cut } = await stopOnA(store);
    // Same weights, other metadata: another file SHA-256, so the KV must not be trusted.
    const other = path.join(path.dirname(model), 'other.gguf');
    await writeFile(other, generateTinyModel({ ctx: 8192 }));
    const engineD = await tinyEngine(other);
    try {
      expect(engineD.info.model).not.toBe(engineA.info.model);
      const d = await resumeOn(store, sessionId, engineD);
      expect(d.kv).toEqual([expect.objectContaining({ action: 'prefill', reason: expect.stringContaining('model') })]);
      expect(d.stats[0]!.cachedTokens).toBe(0);
      expect([...cut, ...generated(d.events)]).toEqual(reference);
    } finally {
      await engineD.dispose();
    }
  });

  test('a damaged KV entry: re-prefill with an event, no failure, same tokens', async () => {
    for (const damage of [
      (e: Uint8Array) => e.slice(0, 20), // cut inside its header
      (e: Uint8Array) => { const x = e.slice(); x[4] = 9; return x; }, // unknown format version
      (e: Uint8Array) => { const x = e.slice(); x.set([0xde, 0xad, 0xbe, 0xef], e.length - 300); return x; }, // state bytes changed
      async (e: Uint8Array) => { const s = await decodeKvEntry(e); return encodeKvEntry({ ...s, tokens: s.tokens.slice(1) }); }, // header lies about the tokens
    ]) {
      const store = createMemoryStore();
      const { sessionId, cut } = await stopOnA(store);
      const runtime = await AgentRuntime.open(store, setupFor(f, engineB, { sampling: SAMPLING }), sessionId);
      const name = kvComponentName(kvFormatOf(engineA.info));
      const entry = await runtime.session.component(runtime.head, name);
      await runtime.session.append({ events: [], components: { [name]: await damage(entry) } });
      await runtime.dispose();
      const b = await resumeOn(store, sessionId, engineB);
      expect(b.events.some((e) => e.type === 'step-failed')).toBe(false);
      expect(b.kv).toHaveLength(1);
      const kv = b.kv[0]!;
      expect(kv.action).toBe('prefill');
      expect(kv.action === 'prefill' && kv.reason.length).toBeGreaterThan(10);
      expect([...cut, ...generated(b.events)]).toEqual(reference);
    }
  });

  test('the rule: load when it beats the prefill at the measured rate; tiny or huge states are not shipped', () => {
    expect(kvPays(2048, 512 * 1024, { prefillTps: 2000 }).pays).toBe(true);
    expect(kvPays(2048, 512 << 20, { prefillTps: 50_000, maxBytes: 1 << 30 }).pays).toBe(false);
    expect(kvPays(8, 4096).pays).toBe(false);
    expect(kvPays(4096, 300 << 20).pays).toBe(false);
  });
});

describe('KV handoff through the relay', () => {
  let f: Fixtures;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;

  beforeAll(async () => {
    f = await fixtures();
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: await tinyModelFile(), componentDirs: Object.values(f.dirs) });
  }, 180_000);

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  /** Runs `input` on the relay's worker and follows it to its end; stops it (hands it back) after `stopAfterTokens`. */
  async function runOnWorker(p: PublishResult, input: Parameters<typeof runBody>[2], stopAfterTokens?: number): Promise<OpenRunMessage[]> {
    const res = await postRun(relay.url, await runBody(relay.url, p, input));
    const run = v.parse(RunRecordSchema, await res.json());
    let tokens = 0;
    let stop: Promise<unknown> | undefined;
    const { messages } = await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, p.key, 0, (m) => {
      if (m.event.type === 'token' && ++tokens === stopAfterTokens) {
        stop = fetch(`${relay.url}/api/v2/runs/${run.id}/stop`, { method: 'POST', headers: { authorization: `Bearer ${p.writeToken}` } });
      }
    });
    await stop;
    return messages;
  }

  test('stop (hand back) saves the KV into the published checkpoint; the next run on a worker loads it', async () => {
    const engine = await tinyEngine(await tinyModelFile());
    try {
      const device = createMemoryStore();
      const runtime = await AgentRuntime.create(device, setupFor(f, engine, { sampling: { maxTokens: 400, temperature: 0, seed: 0 } }), { agent: f.ids.scribe });
      await runtime.dispose();
      const p = await publishSession(device, runtime.session.id, new RelayHttp({ baseUrl: relay.url }));
      const first = await runOnWorker(p, { type: 'start', task: TASK }, CUT_AFTER);
      const types = first.map((m) => m.event.type);
      expect(types).not.toContain('error');
      const saved = first.find((m) => m.event.type === 'kv')?.event as KvEvent | undefined;
      expect(saved).toMatchObject({ action: 'saved' });
      // It streams after the checkpoint that holds it (published with that checkpoint).
      expect(types.indexOf('kv')).toBeGreaterThan(types.lastIndexOf('checkpoint'));

      // The device takes it back: the KV entry is in the head checkpoint, a valid entry for this model.
      await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), p.snapshot.id, p.key, device);
      const back = await AgentRuntime.open(device, setupFor(f, engine), runtime.session.id);
      const entry = await decodeKvEntry(await back.session.component(back.head, kvComponentName(kvFormatOf(engine.info))));
      expect(entry).toMatchObject({ engine: kvFormatOf(engine.info), model: engine.info.model });
      expect(entry.tokens.length).toBe(saved!.tokens);
      await back.dispose();

      // Resumed on the worker again: the KV is loaded before the continuation.
      const second = await runOnWorker(p, { type: 'resume' });
      const kv = second.find((m) => m.event.type === 'kv')?.event;
      expect(kv).toMatchObject({ action: 'loaded', tokens: saved!.tokens });
      expect(second.map((m) => m.event.type)).not.toContain('error');
    } finally {
      await engine.dispose();
    }
  });
});
