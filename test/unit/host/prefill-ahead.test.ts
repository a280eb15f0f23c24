/**
 * A reply cut by a move is prefilled on the worker while its runtime opens (runtime/prefill-ahead.ts): a session
 * cut mid-generation on a device (node-llama-cpp, tiny generated model) and published to a real relay is resumed by
 * two RunHosts on engines of their own, one prefilling ahead and one not. Both continue token for token as the
 * generation that never moved; ahead, the cut's prompt was evaluated into the session's slot before the
 * continuation, which then found all of it cached. A session whose checkpoint carries this engine's KV loads that
 * instead: nothing is prefilled ahead. A move that warms the worker while the reply still streams (host/move-ahead.ts)
 * leaves it only the cut step to fetch and only the ids generated since the warm to prefill, which the resume's
 * `continue` input carries so they go in at once; a relay runner sends them only after a warm with the cut's prompt.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { RelayRunner } from '../../../src/core/host/relay-runner.ts';
import { RunHost, type RunEvent } from '../../../src/core/host/run-host.ts';
import type { Engine, Prompt } from '../../../src/core/llm/engine.ts';
import { preparePrompt } from '../../../src/core/llm/prompt.ts';
import type { StreamSocket } from '../../../src/core/parallel/index.ts';
import { RelayHttp, createWorkerKeys, openRunInput, publishSession, type PublishResult } from '../../../src/core/protocol/index.ts';
import { deriveSessionKeys } from '../../../src/core/snapshot/index.ts';
import { AgentRuntime, type RuntimeEvent } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { runOnHost } from '../../support/host-run.ts';
import { recording } from '../../support/recording-engine.ts';
import { fixtures, loader, setupFor, tinyEngine, tinyModelFile, type Fixtures } from '../../support/runtime-agent.ts';
import { FakeWorker, TOKEN } from '../api/fake-worker.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

const TASK = 'ferry river harbour crossing tide deck rope lantern ferry river harbour crossing tide deck rope lantern';
const SAMPLING = { maxTokens: 64, temperature: 0, seed: 0 };
const CUT_AFTER = 4;

const generated = (events: readonly (RuntimeEvent | RunEvent)[]): number[] => events.flatMap((e) => (e.type === 'generation' ? (e as { tokens: number[] }).tokens : []));

describe('prefill ahead of a moved generation', () => {
  let f: Fixtures;
  let model: string;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let http: RelayHttp;
  let device: Engine;
  let reference: number[];
  const engines: Engine[] = [];

  beforeAll(async () => {
    f = await fixtures();
    model = await tinyModelFile();
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN });
    http = new RelayHttp({ baseUrl: relay.url });
    device = await tinyEngine(model);
    // The generation as it goes when nothing moves, on an engine of its own (no cache shared).
    const ref = await tinyEngine(model);
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, ref, { sampling: SAMPLING }), { agent: f.ids.scribe });
    for await (const event of runtime.run({ type: 'start', task: TASK })) if (event.type === 'generation') (reference ??= []).push(...event.tokens);
    await runtime.dispose();
    await ref.dispose();
    expect(reference.length).toBeGreaterThan(CUT_AFTER);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(engines.map((e) => e.dispose()));
    await device?.dispose();
    await relay?.close();
    await dirs?.cleanup();
  });

  /** The task started on the device and cut after CUT_AFTER tokens (a move), published for a worker: twice (each run publishes onto its own). */
  async function cutOnDevice(kv?: { save: true }): Promise<{ published: [PublishResult, PublishResult]; cut: number[]; prompt: number[] }> {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, setupFor(f, device, { sampling: SAMPLING, ...(kv ? { kv } : {}) }), { agent: f.ids.scribe });
    const stop = new AbortController();
    const cut: number[] = [];
    let tokens = 0;
    for await (const event of runtime.run({ type: 'start', task: TASK }, stop.signal)) {
      if (event.type === 'token' && ++tokens === CUT_AFTER) stop.abort();
      if (event.type === 'generation') cut.push(...event.tokens);
    }
    const state = runtime.loopState;
    await runtime.dispose();
    expect(state.cut).toBeDefined();
    const prompt = [...(await preparePrompt(device, state.cut!.prompt)), ...state.cut!.tokens];
    return { published: [await publishSession(store, runtime.session.id, http), await publishSession(store, runtime.session.id, http)], cut, prompt };
  }

  async function hostOn(prefillAhead: boolean): Promise<{ host: RunHost; engine: ReturnType<typeof recording> }> {
    const own = await tinyEngine(model);
    engines.push(own);
    const engine = recording(own);
    return { host: new RunHost({ engine, keys: await createWorkerKeys(), load: loader(f), relayUrl: () => relay.url, prefillAhead }), engine };
  }

  test('ahead or not, the continuation is token-exact; ahead, the cut prompt is evaluated first and then all cached', async () => {
    const { published, cut, prompt } = await cutOnDevice();
    expect(cut.length).toBeLessThan(reference.length);
    const ahead = await hostOn(true);
    const after = await hostOn(false);
    try {
      const a = await runOnHost(ahead.host, published[0], { type: 'resume' });
      const b = await runOnHost(after.host, published[1], { type: 'resume' });
      expect(a.error).toBeUndefined();
      expect(b.error).toBeUndefined();
      expect([...cut, ...generated(a.events)]).toEqual(reference);
      expect([...cut, ...generated(b.events)]).toEqual(reference);

      // Ahead: the cut's prompt and ids so far, into the session's slot, before any generation.
      expect(ahead.engine.verified).toHaveLength(1);
      expect(ahead.engine.verified[0]).toMatchObject({ context: prompt, draft: [] });
      // The continuation then evaluates only the last of them again (for its logits).
      expect(ahead.engine.stats[0]!.cachedTokens).toBe(prompt.length - 1);
      // Not ahead: nothing evaluated early, and the continuation prefills the whole prompt.
      expect(after.engine.verified).toHaveLength(0);
      expect(after.engine.stats[0]!.cachedTokens).toBe(0);
    } finally {
      await ahead.host.close();
      await after.host.close();
    }
  });

  test('warmed while the reply streams on the device, the resume fetches only the cut step; the ids since the warm are prefilled at once after the warmed prompt', async () => {
    const { host, engine } = await hostOn(true);
    const objects = (run: { events: RunEvent[] }): number => (run.events.find((e) => e.type === 'resumed') as unknown as { objects: number }).objects;
    try {
      const store = createMemoryStore();
      const runtime = await AgentRuntime.create(store, setupFor(f, device, { sampling: SAMPLING }), { agent: f.ids.scribe });
      const stop = new AbortController();
      const cut: number[] = [];
      let tokens = 0;
      let warmed: { published: PublishResult; prompt: Prompt; run: Awaited<ReturnType<typeof runOnHost>> } | undefined;
      for await (const event of runtime.run({ type: 'start', task: TASK }, stop.signal)) {
        // As a move warms its destination while the reply streams: the session as the store holds it (its last
        // checkpoint, before this step) goes up, and the worker prefills the streaming prompt.
        if (event.type === 'token' && ++tokens === 1) {
          const published = await publishSession(store, runtime.session.id, http);
          const prompt = runtime.generating!.prompt;
          warmed = { published, prompt, run: await runOnHost(host, published, { type: 'warm', prompt }) };
        }
        if (event.type === 'token' && tokens === CUT_AFTER) stop.abort();
        if (event.type === 'generation') cut.push(...event.tokens);
      }
      const sofar = runtime.loopState.cut!.tokens;
      expect(sofar.length).toBeGreaterThan(0);
      expect(runtime.generating).toBeUndefined();
      await runtime.dispose();
      const { published: first, prompt, run: warm } = warmed!;
      expect(warm).toMatchObject({ status: 'idle' });
      const promptIds = await preparePrompt(device, prompt);
      expect(engine.verified).toEqual([expect.objectContaining({ context: promptIds, draft: [] })]);
      const published = await publishSession(store, runtime.session.id, http, { snapshotId: first.snapshot.id, writeToken: first.writeToken, key: first.key, base: first.base });

      const run = await runOnHost(host, published, { type: 'continue', tokenizer: device.info.tokenizerId, tokens: sofar });
      expect(run.error).toBeUndefined();
      expect([...cut, ...generated(run.events)]).toEqual(reference);
      // Only the cut step travelled. The ids since the warm went in after the warmed prompt, found in the slot; the
      // prefill of the cut, from its checkpoint, then found everything cached.
      expect(objects(run)).toBeGreaterThan(0);
      expect(objects(run)).toBeLessThan(objects(warm));
      const context = [...promptIds, ...sofar];
      expect(engine.verified.slice(1)).toEqual([expect.objectContaining({ context }), expect.objectContaining({ context })]);
      expect(engine.verifiedCached.slice(1)).toEqual([promptIds.length, context.length - 1]);

      // A warm serves one run: the next run of the snapshot fetches the session whole.
      const again = await runOnHost(host, published, { type: 'resume' });
      expect(again.error).toBeUndefined();
      expect(objects(again)).toBeGreaterThan(objects(run));
    } finally {
      await host.close();
    }
  });

  test('a relay runner warmed with the prompt the cut reply came from resumes with the ids since (`continue`); warmed with another, plainly', async () => {
    // A worker that only says what it was asked: the input of each run, opened with the key sealed to it.
    const worker = await FakeWorker.attach(relay.url, 'asked');
    const inputs: unknown[] = [];
    const answer = async (): Promise<void> => {
      const assign = await worker.next((m): m is Extract<typeof m, { type: 'assign' }> => m.type === 'assign' && !inputs.some((i) => (i as { run: string }).run === m.run));
      const keys = await deriveSessionKeys(await worker.keys.open(assign.request.key, assign.request.snapshot));
      inputs.push({ run: assign.run, input: await openRunInput(keys, assign.request.snapshot, assign.request.input) });
      worker.send({ type: 'finished', run: assign.run, status: 'idle' });
    };
    try {
      for (const same of [true, false]) {
        const store = createMemoryStore();
        const runtime = await AgentRuntime.create(store, setupFor(f, device, { sampling: SAMPLING }), { agent: f.ids.scribe });
        const stop = new AbortController();
        let prompt: Prompt | undefined;
        let tokens = 0;
        for await (const event of runtime.run({ type: 'start', task: TASK }, stop.signal)) {
          if (event.type === 'token' && ++tokens === 1) prompt = runtime.generating?.prompt;
          if (event.type === 'token' && tokens === CUT_AFTER) stop.abort();
        }
        const cut = runtime.loopState.cut!;
        await runtime.dispose();
        const runner = new RelayRunner({ sessionId: runtime.session.id, store, relay: http, onEvent: () => undefined, openSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as StreamSocket });
        const warmed = same ? prompt! : { text: 'another prompt' };
        await Promise.all([runner.warm(warmed), answer()]);
        await Promise.all([runner.resume().then(() => runner.settled()), answer()]);
        await runner.close();
        expect(inputs.slice(-2).map((i) => (i as { input: unknown }).input)).toEqual([
          { type: 'warm', prompt: warmed },
          same ? { type: 'continue', tokenizer: device.info.tokenizerId, tokens: cut.tokens } : { type: 'resume' },
        ]);
      }
    } finally {
      worker.close();
    }
  });

  test("a checkpoint with this engine's KV loads it instead: nothing is prefilled ahead", async () => {
    const { published, cut } = await cutOnDevice({ save: true });
    const ahead = await hostOn(true);
    try {
      const run = await runOnHost(ahead.host, published[0], { type: 'resume' });
      expect(run.error).toBeUndefined();
      expect(run.events.find((e) => e.type === 'kv')).toMatchObject({ action: 'loaded' });
      expect(ahead.engine.verified).toHaveLength(0);
      expect([...cut, ...generated(run.events)]).toEqual(reference);
    } finally {
      await ahead.host.close();
    }
  });
});
