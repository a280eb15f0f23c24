/**
 * Per-tool limits declared in the tool's manifest (component.json `limits`), enforced in this thread and in worker
 * threads alike: a call cannot grow the tool's memory past its limit (the cap holds during the call, not checked
 * after it), an answer over its size limit is refused, and on a relay's cloud worker a runaway call is stopped at
 * the tool's own time limit — its worker thread terminated — while the session is restored and goes on.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import { loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { RelayHttp, RunRecordSchema, publishSession } from '../../../src/core/protocol/index.ts';
import { instantiate } from '../../../src/core/runtime/instance.ts';
import { inProcessTool, toolLimits } from '../../../src/core/runtime/tools.ts';
import type { LoadedComponent } from '../../../src/core/runtime/load.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { refusal } from '../../support/refusal.ts';
import { builtFixture } from '../../support/runtime-fixtures.ts';
import { fixtures, tinyEngine, tinyModelFile, type Fixtures } from '../../support/runtime-agent.ts';
import { followToEnd, postRun, runBody } from '../api/fake-worker.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

const DECLARED = { timeMs: 1500, memoryBytes: 24 << 20, outputBytes: 8 << 10 };
let bounded: LoadedComponent;
let boundedDir: string;

beforeAll(async () => {
  boundedDir = await builtFixture('bounded');
  bounded = await loadBuiltComponent(boundedDir);
}, 240_000);

describe('limits declared in the manifest', () => {
  test('the manifest carries them; a host may lower them, never raise them', () => {
    expect(bounded.manifest.limits).toEqual(DECLARED);
    expect(toolLimits(bounded.manifest)).toEqual(DECLARED);
    expect(toolLimits(bounded.manifest, { timeMs: 500, memoryBytes: 1 << 30 })).toEqual({ ...DECLARED, timeMs: 500 });
  });

  test('in this thread: a call cannot grow the memory past the limit, and an answer over its size is refused', async () => {
    const instance = await instantiate(bounded, {});
    const tool = inProcessTool(instance, toolLimits(bounded.manifest));
    expect(await tool.invoke('{"grow":1}')).toEqual({ ok: true, output: '{"count":1}' });
    const err = await refusal(() => tool.invoke('{"grow":64}'));
    expect(err).toMatchObject({ code: 'runtime/tool-memory-limit', details: { limit: DECLARED.memoryBytes } });
    // The cap held during the call: the memory never went past it (64 MiB were asked for).
    expect(instance.memoryBytes()).toBeLessThanOrEqual(DECLARED.memoryBytes);

    const fresh = inProcessTool(await instantiate(bounded, {}), toolLimits(bounded.manifest));
    expect((await fresh.invoke('{"say":4}')).output).toHaveLength(4096);
    expect(await refusal(() => fresh.invoke('{"say":64}'))).toMatchObject({ code: 'runtime/tool-output-limit', details: { limit: DECLARED.outputBytes, bytes: 64 << 10 } });
  });
});

describe('on a relay\'s cloud worker (Node)', () => {
  let f: Fixtures;
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let engine: Engine;

  beforeAll(async () => {
    f = await fixtures();
    dirs = await makeTempDirs();
    const model = await tinyModelFile();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: [...Object.values(f.dirs), boundedDir] });
    engine = await tinyEngine(model);
  }, 240_000);

  afterAll(async () => {
    await relay?.close();
    await engine?.dispose();
    await dirs?.cleanup();
  });

  test('a runaway tool call is stopped at the tool\'s own time limit in its thread; the session is restored and goes on', async () => {
    const store = createMemoryStore();
    const load = async (id: string) => (id === bounded.id ? bounded : (await import('../../support/runtime-agent.ts')).loader(f)(id));
    const runtime = await AgentRuntime.create(store, { engine, load, sampling: { maxTokens: 8, temperature: 0, seed: 0 } }, { agent: f.ids.scribe, tools: [f.ids.tally, bounded.id] });
    await runtime.dispose();
    const http = new RelayHttp({ baseUrl: relay.url });
    const published = await publishSession(store, runtime.session.id, http);
    const run = async (text: string) => {
      const res = await postRun(relay.url, await runBody(relay.url, published, { type: 'user', text }));
      const record = v.parse(RunRecordSchema, await res.json());
      return { record, ...(await followToEnd(`${relay.url}/api/v2/runs/${record.id}/events`, published.key)) };
    };
    expect((await run('/call bounded {}')).messages.map((m) => m.event).filter((e) => e.type === 'reply').map((e) => e.text)).toEqual(['bounded ok: {"count":1}']);
    const runaway = await run('/call bounded {"spin":true}');
    const failed = runaway.messages.find((m) => m.event.type === 'step-failed')?.event;
    expect(failed).toMatchObject({ error: { code: 'runtime/step-failed', cause: { code: 'runtime/tool-time-limit', details: { limitMs: DECLARED.timeMs } } } });
    expect((await http.getRun(runaway.record.id)).status).toBe('idle');
    // Restored from the last checkpoint: the spin call's count is gone; the session goes on.
    const after = await run('/call bounded {}');
    expect(after.messages.map((m) => m.event).filter((e) => e.type === 'reply').map((e) => e.text)).toEqual(['bounded ok: {"count":2}']);
  }, 240_000);
});
