/**
 * A session run speculatively by the agent worker's API: its engine (node-llama-cpp on the tiny generated model, as a
 * device's would be) drafts, the relay's own engine verifies over /api/v2/verify. Its transcript equals a plain greedy
 * run's token for token; cut in the middle, it is finished by a plain run from its checkpoints, identically. A sampled
 * session runs plainly and says why; a greedy session's one sampled generation runs plainly, the next ones
 * speculatively again; drafts for another model than the relay's are refused with a typed error.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createAgentApi, unwrap, type AgentApi, type RunnerEvent, type StartOptions } from '../../src/core/host/index.ts';
import { verifyPath, type VerifySocket } from '../../src/core/protocol/index.ts';
import type { ComponentFiles } from '../../src/core/runtime/tool-worker.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { createMemoryStore, type Store } from '../../src/core/store/index.ts';
import { componentId, enableComponentWasmFeatures } from '../../server/runtime/node-components.ts';
import { componentFiles } from '../../server/runtime/node-tools.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';
import { builtFixture } from '../support/runtime-fixtures.ts';
import { waitFor } from '../support/wait.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

const MAX_TOKENS = 96;
const TASK = 'Tell me the whole story of the ferry and the harbour.';
const GREEDY = { maxTokens: MAX_TOKENS, temperature: 0, seed: 0 };

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let model: string;
let agent: string;
let components: Record<string, ComponentFiles>;
/** The `scribe` fixture agent (its "/sample" message asks one generation for temperature 0.9) and its `tally` tool. */
let scribe: string;
let tally: string;
/** One store for every API of the test, by name, as a device's IndexedDB is shared by its workers. */
const stores = new Map<string, Store>();
const apis: AgentApi<string>[] = [];
/** The plain greedy run's token ids. */
let reference: number[];

const verifyUrl = () => `${relay.url.replace(/^http/, 'ws')}${verifyPath}`;

beforeAll(async () => {
  enableComponentWasmFeatures();
  dirs = await makeTempDirs();
  model = await tinyModelFile();
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, embeddedWorker: false });
  const dir = path.resolve(import.meta.dirname, '..', '..', 'components', 'dist', 'assistant');
  agent = await componentId(dir);
  components = { [agent]: await componentFiles(dir) };
  const [scribeDir, tallyDir] = [await builtFixture('scribe'), await builtFixture('tally')];
  [scribe, tally] = [await componentId(scribeDir), await componentId(tallyDir)];
  components[scribe] = await componentFiles(scribeDir);
  components[tally] = await componentFiles(tallyDir);
  const plain = api();
  const { sessionId } = unwrap(await plain.api.start(start('reference')));
  unwrap(await plain.api.send({ type: 'start', task: TASK }));
  reference = (await generations('reference', sessionId)).flatMap((g) => g.tokens);
}, 240_000);

afterAll(async () => {
  for (const a of apis) await a.close();
  await relay?.close();
  await dirs?.cleanup();
}, 120_000);

function api(): { api: AgentApi<string>; events: RunnerEvent[] } {
  const created = createAgentApi<string>({
    createEngine: (file) => tinyEngine(file),
    openStore: async (name) => stores.get(name) ?? (stores.set(name, createMemoryStore()), stores.get(name)!),
    openVerifySocket: (url) => new WebSocket(url) as unknown as VerifySocket,
  });
  const events: RunnerEvent[] = [];
  created.subscribe((e) => events.push(e));
  apis.push(created);
  return { api: created, events };
}

function start(store: string, extra: Partial<StartOptions<string>> = {}): StartOptions<string> {
  return { components, agent, tools: [], engine: model, store, sampling: GREEDY, ...extra };
}

async function generations(store: string, sessionId: string): Promise<Extract<SessionEvent, { type: 'generation' }>[]> {
  const history = await (await Session.open(stores.get(store)!, sessionId)).history();
  return history.reverse().flatMap((h) => h.checkpoint.events.filter((e): e is Extract<SessionEvent, { type: 'generation' }> => e.type === 'generation'));
}

describe('a session run speculatively: drafted here, verified by the relay', () => {
  it('gives the token ids of a plain greedy run, recorded as speculative', async () => {
    expect(reference).toHaveLength(MAX_TOKENS);
    const { api: spec, events } = api();
    const { sessionId } = unwrap(await spec.start(start('whole', { speculative: { verifyUrl: verifyUrl() } })));
    unwrap(await spec.send({ type: 'start', task: TASK }));
    const moved = await generations('whole', sessionId);
    expect(moved.map((g) => [g.engine.id, g.finish])).toEqual([['speculative', 'length']]);
    expect(moved.flatMap((g) => g.tokens)).toEqual(reference);
    expect(events.filter((e) => e.type === 'token').map((e) => (e as { id: number | null }).id)).toEqual(reference);
    // Its generation event says how the drafts fared: the page counts that as this device's measured acceptance.
    const generated = events.filter((e) => e.type === 'generation');
    expect(generated).toHaveLength(1);
    const tally = (generated[0] as Extract<RunnerEvent, { type: 'generation' }>).speculative!;
    expect(tally).toMatchObject({ draftModel: moved[0]!.engine.model, targetModel: moved[0]!.engine.model });
    expect(tally.accepted + tally.rounds).toBe(MAX_TOKENS);
  }, 240_000);

  it('cut in the middle, a plain run continues it from its checkpoints, identically', async () => {
    const { api: spec, events } = api();
    const { sessionId } = unwrap(await spec.start(start('cut', { speculative: { verifyUrl: verifyUrl() } })));
    const run = spec.send({ type: 'start', task: TASK });
    await waitFor('20 speculative tokens', () => events.filter((e) => e.type === 'token').length >= 20);
    await spec.cancel();
    unwrap(await run);
    const { api: plain } = api();
    unwrap(await plain.start(start('cut', { sessionId })));
    unwrap(await plain.send({ type: 'resume' }));
    const pieces = await generations('cut', sessionId);
    expect(pieces.map((g) => [g.engine.id, g.finish])).toEqual([
      ['speculative', 'abort'],
      ['node-llama-cpp', 'length'],
    ]);
    expect(pieces.flatMap((g) => g.tokens)).toEqual(reference);
  }, 240_000);

  it('a sampled session runs plainly here, and its first run says why', async () => {
    const { api: spec, events } = api();
    const { sessionId } = unwrap(await spec.start(start('sampled', { sampling: { ...GREEDY, temperature: 0.8, seed: 6 }, speculative: { verifyUrl: verifyUrl() } })));
    unwrap(await spec.send({ type: 'start', task: TASK }));
    expect(events[0]).toMatchObject({ type: 'notice', message: expect.stringMatching(/samples \(temperature 0\.8\).*greedy tokens only/) });
    expect(events.filter((e) => e.type === 'notice')).toHaveLength(1);
    expect((await generations('sampled', sessionId)).map((g) => g.engine.id)).toEqual(['node-llama-cpp']);
  }, 240_000);

  it('a greedy session whose agent samples one generation runs that one plainly here, then goes on speculatively', async () => {
    const inputs = [
      { type: 'start', task: 'ferry river harbour' },
      { type: 'user', text: '/sample tide deck rope' },
      { type: 'user', text: 'harbour lights' },
    ] as const;
    const run = async (store: string, extra: Partial<StartOptions<string>>) => {
      const { api: a, events } = api();
      const { sessionId } = unwrap(await a.start(start(store, { agent: scribe, tools: [tally], ...extra })));
      for (const input of inputs) unwrap(await a.send(input));
      return { pieces: await generations(store, sessionId), events };
    };
    const plain = await run('mixed-plain', {});
    const { pieces, events } = await run('mixed', { speculative: { verifyUrl: verifyUrl() } });
    expect(events.filter((e) => e.type === 'step-failed')).toEqual([]);
    expect(pieces.map((g) => g.engine.id)).toEqual(['speculative', 'node-llama-cpp', 'speculative']);
    expect(pieces.map((g) => g.tokens)).toEqual(plain.pieces.map((g) => g.tokens));
    expect(pieces.every((g) => g.tokens.length > 0)).toBe(true);
  }, 240_000);

  it('refuses drafts for another model than the relay verifies with, and a verify address that is not ws(s)', async () => {
    const { api: spec } = api();
    unwrap(await spec.start(start('other', { speculative: { verifyUrl: verifyUrl(), model: 'f'.repeat(64) } })));
    expect(await spec.send({ type: 'start', task: TASK })).toMatchObject({ error: { code: 'api/unknown-model' } });
    expect(await spec.start(start('other', { speculative: { verifyUrl: relay.url } }))).toMatchObject({ error: { code: 'runtime/bad-input', message: expect.stringMatching(/verifyUrl/) } });
  }, 240_000);
});
