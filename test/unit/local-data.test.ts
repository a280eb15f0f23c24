/**
 * This device's data (src/browser/local-data.ts: the session list, records and settings) over IndexedDB (fake-indexeddb in Node), with the session core:
 * - an imported session is catalogued under the template its agent component belongs to (the component files come
 *   from a real HTTP server, as the PWA serves them), a session without an agent as "unknown", and an entry written
 *   before templates were read from the agent is corrected once;
 * - a message sent stays pending until a checkpoint after the one it was sent at holds it;
 * - the catalogue keeps what the current branch's steps cost on paid workers;
 * - the engine limits in Settings: defaults, ranges, and the reply shorter than the context;
 * - Settings' budget as placement applies it: 0 keeps sessions off paid workers, a budget admits steps within it,
 *   and "Move to the cloud worker" goes only where the privacy and the budget allow;
 * - the record of a session in the cloud, kept with the session through delete and undo.
 */
import 'fake-indexeddb/auto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalData } from '../../src/browser/local-data.ts';
import { DEFAULT_SETTINGS, GREEDY, placementPrefs, samplingByTemplate, type Settings } from '../../src/browser/settings.ts';
import { TEMPLATE_IDS } from '../../src/browser/templates.ts';
import { cloudPlacement, decide, relayProfiles } from '../../src/core/placement/index.ts';
import { componentId, loadBuiltComponent } from '../../server/runtime/node-components.ts';
import { buildComponents } from '../../scripts/components/build.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { exportSession, importFerryFile } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { testLlm } from '../support/session-fixtures.ts';
import { tinyEngine, tinyModelFile } from '../support/runtime-agent.ts';

const root = path.join(import.meta.dirname, '..', '..');
const dist = path.join(root, 'components', 'dist');
const TIMEOUT = 240_000;

let server: Server;
let engine: Engine;
let app: LocalData;
let dbs = 0;

/** Fresh local data on its own databases. */
const openApp = (): Promise<LocalData> => LocalData.open({ storeName: `ferry-test-${++dbs}`, appDbName: `ferry-app-test-${dbs}` });

beforeAll(async () => {
  await buildComponents({ srcDir: path.join(root, 'components'), outDir: dist, witDir: path.join(root, 'components', 'wit'), names: ['dev-guide', 'workspace', 'js', 'assistant', 'notes', 'podcast', 'survey', 'docs'] });
  // The PWA's static component files (/components/<name>/<file>), served from the build as the relay serves them.
  server = createServer((req, res) => {
    const m = /^\/components\/([a-z-]+)\/([A-Za-z0-9._-]+)$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end();
    readFile(path.join(dist, m[1]!, m[2]!)).then((bytes) => res.writeHead(200).end(bytes), () => res.writeHead(404).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  Object.defineProperty(globalThis, 'location', { value: { origin: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` }, configurable: true });
  engine = await tinyEngine(await tinyModelFile());
  app = await openApp();
}, TIMEOUT);

afterAll(async () => {
  app?.close();
  await engine?.dispose();
  await new Promise((resolve) => server?.close(resolve));
});

/** A .ferry file of a session as the PWA creates one: the agent's and tools' first state, from the built components. */
async function agentSession(agent: string, tools: string[]): Promise<Uint8Array> {
  const store = createMemoryStore();
  const dirs = new Map<string, string>();
  for (const name of [agent, ...tools]) dirs.set(await componentId(path.join(dist, name)), path.join(dist, name));
  const [a, ...t] = [...dirs.keys()];
  const runtime = await AgentRuntime.create(store, { engine, load: (id) => loadBuiltComponent(dirs.get(id)!), sampling: { maxTokens: 16, temperature: 0, seed: 0 } }, { agent: a!, tools: t });
  await runtime.dispose();
  return exportSession(store, runtime.session.id);
}

const user = (text: string): SessionEvent => ({ type: 'user', text, at: Date.now() });

describe('the catalogue reads a session\'s template from its agent', () => {
  test('an imported dev-guide or podcast session is catalogued under its template, with its agent component', async () => {
    for (const [agent, tools, template] of [['dev-guide', ['workspace', 'js'], 'dev-guide'], ['podcast', ['docs'], 'podcast']] as const) {
      const meta = await app.importFile(await agentSession(agent, [...tools]), `${agent}.ferry`);
      expect(meta.template).toBe(template);
      expect(meta.agent).toBe(await componentId(path.join(dist, agent)));
    }
  }, TIMEOUT);

  test('a session whose agent is none of this build\'s templates, or that has no agent, is "unknown"', async () => {
    // The assistant's agent with the dev guide's tools: no template runs that combination.
    const odd = await app.importFile(await agentSession('assistant', ['workspace']), 'odd.ferry');
    expect(odd).toMatchObject({ template: 'unknown', agent: await componentId(path.join(dist, 'assistant')) });
    const store = createMemoryStore();
    const session = await Session.create(store, { llm: testLlm });
    await session.append({ events: [user('hello')] });
    const bare = await app.importFile(await exportSession(store, session.id), 'bare.ferry');
    expect(bare).toMatchObject({ template: 'unknown', agent: null });
  }, TIMEOUT);

  test('an exported session is imported under its own title, whatever the file is called; a file without one under its name', async () => {
    const store = createMemoryStore();
    const session = await Session.create(store, { llm: testLlm });
    await session.append({ events: [user('what about the tides?')] });
    const mine = await openApp();
    const source = await mine.importFile(await exportSession(store, session.id), 'from-elsewhere.ferry');
    expect(source.title).toBe('from elsewhere');
    await mine.sessions.rename(source.id, 'Tide tables for Saturday');
    const { name, bytes } = await mine.exportFile(source.id);
    expect(name).toBe('Tide-tables-for-Saturday.ferry');
    expect(await importFerryFile(createMemoryStore(), bytes)).toEqual({ session: source.id, title: 'Tide tables for Saturday' });
    const other = await openApp();
    expect((await other.importFile(bytes, 'download (3).ferry')).title).toBe('Tide tables for Saturday');
    // A title that would not read back is left out of the file rather than failing the export.
    expect(await importFerryFile(createMemoryStore(), await exportSession(store, session.id, { title: '   ' }))).toEqual({ session: session.id });
    mine.close();
    other.close();
  }, TIMEOUT);

  test('an entry catalogued before templates were read from the agent is corrected once, when opened', async () => {
    const meta = await app.importFile(await agentSession('survey', ['docs']), 'survey.ferry');
    await app.sessions.measure(meta.id); // its size, measured in the background, is in the entry before it is rewritten
    // As the previous version wrote imports: an assistant, with no agent recorded.
    const legacy: Record<string, unknown> = { ...meta, template: 'assistant' };
    delete legacy.agent;
    const db = (app as unknown as { db: { put(store: string, value: unknown): Promise<unknown> } }).db;
    await db.put('sessions', legacy);
    expect((await app.sessions.get(meta.id)).template).toBe('assistant');
    const checked = await app.sessions.checkTemplate(meta.id);
    expect(checked).toMatchObject({ template: 'survey', agent: meta.agent });
    expect(await app.sessions.get(meta.id)).toEqual(checked);
  }, TIMEOUT);
});

describe('a message waits as pending until a checkpoint holds it', () => {
  test('it lands with a checkpoint after the one it was sent at; an older message with the same words does not count', async () => {
    const session = await Session.create(app.store, { llm: testLlm });
    await session.append({ events: [user('same words')] });
    const pending = await app.records.savePending(session, 'same words');
    expect(pending).toMatchObject({ text: 'same words', branch: 'main', base: await session.head() });
    // The earlier identical message is before the base: still pending.
    expect(await app.records.pendingInput(session)).toEqual(pending);
    await session.append({ events: [{ type: 'generation', tokens: [1], text: 'a reply to something else', engine: { id: 'x', kind: 'scripted', model: 'm' }, timings: { promptMs: 1, generateMs: 1 }, finish: 'stop', at: Date.now() }] });
    expect(await app.records.pendingInput(session)).toEqual(pending);
    // The step that takes it is checkpointed: it has landed, and its record is gone.
    await session.append({ events: [user('same words')] });
    expect(await app.records.pendingInput(session)).toBeNull();
    expect(await app.records.pendingInput(session)).toBeNull();
  });

  test('a branch rolled back past the message\'s base does not hold it; Discard forgets it', async () => {
    const session = await Session.create(app.store, { llm: testLlm });
    const root = await session.head();
    await session.append({ events: [user('first')] });
    await app.records.savePending(session, 'second');
    await session.append({ events: [user('second')] });
    await session.rollback(root);
    expect(await app.records.pendingInput(session)).toMatchObject({ text: 'second' });
    await app.records.clearPending(session.id);
    expect(await app.records.pendingInput(session)).toBeNull();
  });
});

describe('what a session cost', () => {
  test('the catalogue keeps the current branch\'s cost on paid workers: when adopted, after a run, after a rollback', async () => {
    const session = await Session.create(app.store, { llm: testLlm });
    const root = await session.head();
    await session.append({ events: [user('on a paid worker')], costMicros: 1500 });
    expect((await app.sessions.get(session.id)).costMicros).toBe(1500);
    await session.append({ events: [user('and again')], costMicros: 250 });
    await app.sessions.ran(session);
    expect((await app.sessions.get(session.id)).costMicros).toBe(1750);
    await session.rollback(root);
    await app.sessions.ran(session);
    expect((await app.sessions.get(session.id)).costMicros).toBe(0);
  });

  test('edits of one entry at the same time keep each other: a run\'s cost, where it runs, its title, its size', async () => {
    const session = await Session.create(app.store, { llm: testLlm });
    await app.sessions.get(session.id);
    await session.append({ events: [user('on a paid worker')], components: { pad: new Uint8Array(4096) }, costMicros: 900 });
    // Each reads the entry, changes its own field and writes it back: none may put back a copy older than another's.
    await Promise.all([app.sessions.ran(session), app.sessions.setRunsOn(session.id, 'Cloud worker'), app.sessions.rename(session.id, 'Harbour story'), app.sessions.measure(session.id)]);
    expect(await app.sessions.get(session.id)).toMatchObject({ costMicros: 900, steps: 1, runsOn: 'Cloud worker', title: 'Harbour story', sizeBytes: expect.any(Number) });
  });

  test('a session created while the list is read keeps the title it was created with, not the list\'s repair', async () => {
    // Creating writes the session's head, then its entry: a list read between the two finds a head with no entry.
    const session = await Session.create(app.store, { llm: testLlm });
    const [listed, created] = await Promise.all([app.sessions.list(), app.sessions.register(session.id, 'assistant', 'a'.repeat(64), 'Here')]);
    expect(listed.map((m) => m.id)).toContain(session.id);
    expect(created.title).toBe('Here');
    expect((await app.sessions.get(session.id)).title).toBe('Here');
  });
});

describe('the engine limits in Settings', () => {
  test('default to 512 reply tokens in a 4,096-token context, no GPU model, GGUF models on the GPU where it can and $10/h of the user\'s time, also for settings saved before they existed', async () => {
    expect(DEFAULT_SETTINGS).toMatchObject({ replyTokens: 512, contextSize: 4096, gpuModel: '', ggufOnGpu: true, usdPerHour: 10 });
    const fresh = await openApp();
    const db = (fresh as unknown as { db: { put(store: string, value: unknown, key: string): Promise<unknown> } }).db;
    await db.put('settings', { relayUrl: '', privacy: 'any', objective: 'fastest', budgetUsd: 3, theme: 'dark' }, 'settings');
    expect(await fresh.settings.settings()).toEqual({ relayUrl: '', privacy: 'any', privacyAsked: true, objective: 'fastest', budgetUsd: 3, usdPerHour: 10, theme: 'dark', replyTokens: 512, contextSize: 4096, gpuModel: '', ggufOnGpu: true, ...GREEDY, agentSampling: {} });
    fresh.close();
  });

  test('the privacy question is asked once: not yet on a new device, nor where an older build kept the default; answered once saved', async () => {
    const fresh = await openApp();
    expect(await fresh.settings.settings()).toMatchObject({ privacy: 'this-device', privacyAsked: false });
    const db = (fresh as unknown as { db: { put(store: string, value: unknown, key: string): Promise<unknown> } }).db;
    await db.put('settings', { relayUrl: '', privacy: 'this-device', objective: 'fastest', budgetUsd: 0, theme: 'dark' }, 'settings');
    expect(await fresh.settings.settings()).toMatchObject({ privacy: 'this-device', privacyAsked: false, theme: 'dark' });
    await fresh.settings.saveSettings({ ...(await fresh.settings.settings()), privacy: 'my-devices', privacyAsked: true });
    expect(await fresh.settings.settings()).toMatchObject({ privacy: 'my-devices', privacyAsked: true, theme: 'dark' });
    fresh.close();
  });

  test('are checked: whole numbers in range, the reply shorter than the context', async () => {
    const base = await app.settings.settings();
    for (const [bad, why] of [
      [{ replyTokens: 8 }, /"Reply length" is invalid: it must be at least 16 tokens/],
      [{ replyTokens: 9000 }, /"Reply length" is invalid: it must be at most 8192 tokens/],
      [{ replyTokens: 100.5 }, /"Reply length" is invalid: it must be a whole number/],
      [{ contextSize: 100 }, /"Context size" is invalid: it must be at least 512 tokens/],
      [{ contextSize: Number.NaN }, /"Context size" is invalid/],
      [{ replyTokens: 2048, contextSize: 2048 }, /reply length \(2048 tokens\) must be smaller than the context size \(2048 tokens\)/],
      [{ gpuModel: 'x'.repeat(257) }, /"GPU model" is invalid/],
      [{ ggufOnGpu: 'yes' as unknown as boolean }, /"GGUF models on the GPU" is invalid/],
      [{ temperature: 2.5 }, /"Temperature" is invalid: it must be at most 2/],
      [{ topP: 1.5 }, /"Top-p" is invalid: it must be from 0 to 1/],
      [{ seed: -1 }, /"Seed" is invalid: it must be at least 0/],
      [{ usdPerHour: 0 }, /"Value of your time" is invalid: it must be at least \$0\.01/],
      [{ usdPerHour: 20_000 }, /"Value of your time" is invalid: it must be at most \$10000/],
      [{ usdPerHour: Number.NaN }, /"Value of your time" is invalid/],
      [{ agentSampling: { podcast: { ...GREEDY, temperature: 3 } } }, /"Podcast: Temperature" is invalid: it must be at most 2/],
      [{ agentSampling: { podcast: { ...GREEDY, seed: 1.5 } } }, /"Podcast: Seed" is invalid: it must be a whole number/],
    ] as const) {
      await expect(app.settings.saveSettings({ ...base, ...bad })).rejects.toMatchObject({ code: 'app/bad-settings', message: expect.stringMatching(why) });
    }
    expect(await app.settings.saveSettings({ ...base, replyTokens: 1024, contextSize: 8192 })).toMatchObject({ replyTokens: 1024, contextSize: 8192 });
    expect(await app.settings.settings()).toMatchObject({ replyTokens: 1024, contextSize: 8192 });
  });
});

describe('sampling in Settings, for all agents and per agent', () => {
  test("an agent with sampling of its own samples its way; the others sample as Settings say for all agents; both survive a reload", async () => {
    const base = await app.settings.settings();
    expect(samplingByTemplate(base)).toEqual(Object.fromEntries(TEMPLATE_IDS.map((t) => [t, { temperature: 0, seed: 0 }])));
    const podcast = { ...GREEDY, temperature: 0.8, topP: 0.9, topK: 40, minP: 0.05, repeatPenalty: 1.1, seed: 7 };
    await app.settings.saveSettings({ ...base, temperature: 0.3, seed: 2, agentSampling: { podcast } });
    const saved = await app.settings.settings();
    expect(saved).toMatchObject({ temperature: 0.3, seed: 2, agentSampling: { podcast } });
    const byTemplate = samplingByTemplate(saved);
    expect(byTemplate.podcast).toEqual({ temperature: 0.8, topP: 0.9, topK: 40, minP: 0.05, repeatPenalty: 1.1, seed: 7 });
    for (const t of TEMPLATE_IDS.filter((t) => t !== 'podcast')) expect(byTemplate[t]).toEqual({ temperature: 0.3, seed: 2 });
    // Back to the settings for all agents.
    await app.settings.saveSettings({ ...saved, agentSampling: {} });
    expect(samplingByTemplate(await app.settings.settings()).podcast).toEqual({ temperature: 0.3, seed: 2 });
    await app.settings.saveSettings({ ...saved, ...GREEDY, agentSampling: {} });
  });

  test('an agent the build does not have is refused', async () => {
    const base = await app.settings.settings();
    await expect(app.settings.saveSettings({ ...base, agentSampling: { poet: GREEDY } as Settings['agentSampling'] })).rejects.toMatchObject({ code: 'app/bad-settings' });
  });
});

describe("Settings' budget in placement", () => {
  // The relay's list as the page reads it: a paid worker (`ferry worker --price`) and a free one, both fast.
  const worker = (id: string, name: string, price?: { promptPer1k: number; outputPer1k: number }) => ({
    id: id.repeat(16),
    kind: 'cloud' as const,
    embedded: false,
    runs: 0,
    profile: { name, model: 'm', tokenizer: 't', engine: 'node-llama-cpp', device: 'gpu', contextSize: 8192, slots: 1, prefillTps: 5000, decodeTps: price ? 200 : 100, ...(price ? { price } : {}) },
    publicKey: 'A'.repeat(87),
  });
  const list = { workers: [worker('a', 'paid', { promptPer1k: 0.001, outputPer1k: 0.002 }), worker('b', 'free')] };
  const step = { sessionId: 's', model: 'm', promptTokens: 2000, expectedOutputTokens: 500, kvBytesPerToken: 0 };
  const place = (budgetUsd: number) => decide(step, relayProfiles(list, { rttMs: 20, bandwidthBps: 1e7 }, Date.now()), placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'any', objective: 'fastest', budgetUsd }));

  test('0 (the default) keeps sessions off paid workers, saying why; free ones still run them', () => {
    expect(DEFAULT_SETTINGS.budgetUsd).toBe(0);
    const d = place(0);
    expect(d.estimate.name).toBe('free');
    expect(d.candidates.find((c) => c.name === 'paid')).toMatchObject({ allowed: false, excluded: expect.stringMatching(/over the \$0 budget/) });
  });

  test('a step within the budget may go to the paid worker (here the faster one); one over it may not', () => {
    // The step costs 2,000 × $0.001/1k + 500 × $0.002/1k = $0.003.
    expect(place(0.01).estimate.name).toBe('paid');
    expect(place(0.002).estimate.name).toBe('free');
  });

  test("balanced weighs a paid worker's price against the time it saves at the user's price of time", () => {
    // The paid worker saves ~2.5 s of decoding on this step for $0.003: worth it at $10/h, not at $1/h.
    const balanced = (usdPerHour: number) => decide(step, relayProfiles(list, { rttMs: 20, bandwidthBps: 1e7 }, Date.now()), placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'any', budgetUsd: 1, usdPerHour }));
    expect(balanced(DEFAULT_SETTINGS.usdPerHour)).toMatchObject({ estimate: { name: 'paid' }, reason: expect.stringContaining('$10/h of your time') });
    expect(balanced(1)).toMatchObject({ estimate: { name: 'free' }, reason: expect.stringContaining('$1/h of your time') });
  });

  test('"Move to the cloud worker" goes where the privacy and budget allow: any worker when all may take it, else pinned', () => {
    const fleet = relayProfiles(list, { rttMs: 20, bandwidthBps: 1e7 }, Date.now());
    const where = (settings: Partial<Settings>) => cloudPlacement(step, fleet, placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'any', objective: 'fastest', ...settings }));
    // Both allowed: the relay picks (and moves the run on if its worker goes).
    expect(where({ budgetUsd: 0.01 })).toBeUndefined();
    // The paid worker is a third party's ("my devices" keeps sessions off it; the relay owner's free one may take
    // them, pinned there so no third party's that attaches later can), and over a $0 budget: the free one.
    expect(where({ budgetUsd: 0.01, privacy: 'my-devices' })).toEqual({ node: 'b'.repeat(16) });
    const freeOnly = relayProfiles({ workers: [list.workers[1]!] }, { rttMs: 20, bandwidthBps: 1e7 }, Date.now());
    expect(cloudPlacement(step, freeOnly, placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'my-devices' }))).toEqual({ node: 'b'.repeat(16) });
    expect(where({ budgetUsd: 0 })).toEqual({ node: 'b'.repeat(16) });
    // Only the paid worker: no move, and the reason.
    const paidOnly = relayProfiles({ workers: [list.workers[0]!] }, { rttMs: 20, bandwidthBps: 1e7 }, Date.now());
    expect(() => cloudPlacement(step, paidOnly, placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'my-devices', budgetUsd: 1 }))).toThrow(/charges for its tokens.*"My devices"/);
    expect(() => cloudPlacement(step, paidOnly, placementPrefs({ ...DEFAULT_SETTINGS, privacy: 'any' }))).toThrow(/paid: costs \$[\d.]+, over the \$0 budget.*raise the budget/);
  });
});

describe('the record of where a session runs while away', () => {
  test('is kept, dropped, and goes and comes back with its session through delete and undo', async () => {
    const meta = await app.importFile(await agentSession('assistant', ['notes']), 'cloudy.ferry');
    expect(await app.records.placement(meta.id)).toBeUndefined();
    await app.records.savePlacement(meta.id, '{"v":1}');
    expect(await app.records.placement(meta.id)).toBe('{"v":1}');
    const session = await app.openSession(meta.id);
    await app.records.savePending(session, 'not yet sent');
    const deleted = await app.remove(meta.id);
    expect(await app.records.placement(meta.id)).toBeUndefined();
    await app.undoRemove(deleted);
    expect(await app.records.placement(meta.id)).toBe('{"v":1}');
    expect(await app.records.pendingInput(await app.openSession(meta.id))).toMatchObject({ text: 'not yet sent' });
    await app.records.savePlacement(meta.id, null);
    expect(await app.records.placement(meta.id)).toBeUndefined();
  }, TIMEOUT);
});
