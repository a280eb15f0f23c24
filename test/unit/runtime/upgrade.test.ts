/**
 * App updates do not strand sessions. A session carries the builds it runs (their bytes in its closure), so after an
 * update that ships only the next build of its agent it keeps running the build it started with — on this device,
 * and on a cloud worker that ships only the new build. "Upgrade" replays its recorded events into the new build: a
 * new session whose transcript is the old one's and which goes on with the new build; a build that would act
 * otherwise is refused, and nothing is written.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import { openComponentLibrary } from '../../../server/relay/component-library.ts';
import { componentId, loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { RelayHttp, RunRecordSchema, publishSession } from '../../../src/core/protocol/index.ts';
import { readHostState } from '../../../src/core/runtime/checkpoint.ts';
import type { LoadedComponent } from '../../../src/core/runtime/load.ts';
import { AgentRuntime, type RuntimeSetup } from '../../../src/core/runtime/runtime.ts';
import { upgradeSession } from '../../../src/core/runtime/upgrade.ts';
import { Session } from '../../../src/core/session/index.ts';
import { buildComponentName } from '../../../src/core/snapshot/index.ts';
import { createMemoryStore, type Store } from '../../../src/core/store/index.ts';
import { refusal } from '../../support/refusal.ts';
import { builtFixture } from '../../support/runtime-fixtures.ts';
import { fixtures, tinyEngine, tinyModelFile, turn, type Fixtures } from '../../support/runtime-agent.ts';
import { followToEnd, postRun, runBody } from '../api/fake-worker.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from '../api/relay-harness.ts';

const sampling = { maxTokens: 8, temperature: 0, seed: 0 };
let f: Fixtures;
let nextDir: string;
let nextId: string;
let engine: Engine;
let model: string;

/** What a host ships: these builds and no others (an update drops the old ones). */
function ships(builds: Record<string, string>): RuntimeSetup['load'] {
  const cache = new Map<string, Promise<LoadedComponent>>();
  return (id) => {
    const dir = builds[id];
    if (!dir) return Promise.reject(Object.assign(new Error(`no build ${id}`), { code: 'runtime/missing-component' }));
    let loaded = cache.get(id);
    if (!loaded) cache.set(id, (loaded = loadBuiltComponent(dir)));
    return loaded;
  };
}

/** A session of the scribe's current build with two turns, made on a device that ships it. */
async function oldSession(store: Store): Promise<string> {
  const before = { engine, sampling, load: ships({ [f.ids.scribe]: f.dirs.scribe, [f.ids.tally]: f.dirs.tally }) };
  const runtime = await AgentRuntime.create(store, before, { agent: f.ids.scribe, tools: [f.ids.tally] });
  await turn(runtime, 'the first message', true);
  await turn(runtime, 'the second message');
  await runtime.dispose();
  return runtime.session.id;
}

beforeAll(async () => {
  f = await fixtures();
  nextDir = await builtFixture('scribe-next');
  nextId = await componentId(nextDir);
  model = await tinyModelFile();
  engine = await tinyEngine(model);
}, 300_000);

afterAll(() => engine?.dispose());

/** After the update: the device ships the next build of the agent (and the same tool), not the old one. */
const updated = (): RuntimeSetup => ({ engine, sampling, load: ships({ [nextId]: nextDir, [f.ids.tally]: f.dirs.tally }) });

describe('after an update', () => {
  test('the session carries its builds, and goes on here with the one it started with', async () => {
    expect(nextId).not.toBe(f.ids.scribe);
    const store = createMemoryStore();
    const id = await oldSession(store);
    const session = await Session.open(store, id);
    const components = (await session.checkpoint(await session.head())).components;
    expect(Object.keys(components)).toEqual(expect.arrayContaining([buildComponentName(f.ids.scribe), buildComponentName(f.ids.tally)]));

    const runtime = await AgentRuntime.open(store, updated(), id);
    const { replies } = await turn(runtime, 'after the update');
    await runtime.dispose();
    // The old build answered (its reply format), continuing the same transcript: its third turn.
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatch(/^turn 3: /);
    expect((await readHostState(session, await session.head())).agent).toBe(f.ids.scribe);
  });

  test('upgrade replays the session into the next build: the same transcript, and it goes on with the next build', async () => {
    const store = createMemoryStore();
    const id = await oldSession(store);
    const result = await upgradeSession(store, id, updated(), { agent: nextId, tools: [f.ids.tally] });
    expect(result).toMatchObject({ inputs: 2 });
    expect(result.sessionId).not.toBe(id);

    const texts = async (sessionId: string) => (await (await Session.open(store, sessionId)).history()).reverse().flatMap((h) => h.checkpoint.events)
      .filter((e) => e.type === 'user' || e.type === 'generation' || e.type === 'tool-call').map((e) => (e.type === 'tool-call' ? `${e.tool} ${e.args}` : e.text));
    expect(await texts(result.sessionId)).toEqual(await texts(id));
    const upgraded = await Session.open(store, result.sessionId);
    expect((await readHostState(upgraded, await upgraded.head())).agent).toBe(nextId);

    const runtime = await AgentRuntime.open(store, updated(), result.sessionId);
    const { replies } = await turn(runtime, 'with the new build');
    await runtime.dispose();
    expect(replies).toEqual([expect.stringMatching(/^\[next\] turn 3: /)]);
    // The old session is as it was.
    expect((await readHostState(await Session.open(store, id), await (await Session.open(store, id)).head())).agent).toBe(f.ids.scribe);
  });

  test('a build that would act otherwise is refused, and nothing is written', async () => {
    const store = createMemoryStore();
    const id = await oldSession(store);
    const sessions = async () => (await store.listRefs('sessions/')).length;
    const before = await sessions();
    // The next build with a tool it does not call the way the session did: the recorded calls to `tally` are not made.
    const err = await refusal(() => upgradeSession(store, id, { ...updated(), load: ships({ [nextId]: nextDir, [f.ids.tally]: f.dirs.tally, [f.ids.spinner]: f.dirs.spinner }) }, { agent: nextId, tools: [f.ids.spinner] }));
    expect(err.code).toBe('runtime/upgrade-diverged');
    expect(await sessions()).toBe(before);
  });
});

describe('on a cloud worker that ships only the next build', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: [nextDir, f.dirs.tally] });
    expect([...(await openComponentLibrary([nextDir, f.dirs.tally])).ids.keys()]).not.toContain(f.ids.scribe);
  }, 240_000);

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  test('a session made by the previous build continues there, on its own build', async () => {
    const store = createMemoryStore();
    const id = await oldSession(store);
    const published = await publishSession(store, id, new RelayHttp({ baseUrl: relay.url }));
    const res = await postRun(relay.url, await runBody(relay.url, published, { type: 'user', text: 'in the cloud' }));
    const run = v.parse(RunRecordSchema, await res.json());
    const { messages } = await followToEnd(`${relay.url}/api/v2/runs/${run.id}/events`, published.key);
    expect(messages.map((m) => m.event).filter((e) => e.type === 'error')).toEqual([]);
    expect(messages.filter((m) => m.event.type === 'reply').map((m) => m.event.text)).toEqual([expect.stringMatching(/^turn 3: /)]);
    expect((await new RelayHttp({ baseUrl: relay.url }).getRun(run.id)).status).toBe('idle');
  }, 240_000);
});
