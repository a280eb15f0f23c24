/**
 * Live migration edge → cloud → edge (issue 6): in Chromium, the page's agent worker runs a session on wllama
 * (the tiny generated model); in the middle of a generation the session moves to the relay's embedded cloud worker
 * (node-llama-cpp, the same model file), whose tokens keep streaming to the page; it is then handed back — the
 * cloud's generation cut again mid-way — and finishes in the page. The token ids of the whole transcript, and of
 * the stream the page saw, equal those of a greedy run that never moved.
 *
 * Also: a move that cannot reach the relay fails with a typed error and leaves the session running here; and
 * device → device, a generation cut on one agent worker is finished by another that opened the share link.
 *
 * The relay is `ferry start` in a child process (a browser command starts it with `--model <generated gguf>`),
 * opened to this page's origin with --allow-origin; the move is the product's SessionMover
 * (src/browser/session-mover.ts) over the real browser relay client.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import { AgentClient } from '../../src/browser/agent-client.ts';
import { RelayClient, importShareLink } from '../../src/browser/relay-client.ts';
import { SessionMover, type PlacedEvent } from '../../src/browser/session-mover.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import type { ComponentFiles } from '../../src/core/runtime/tool-worker.ts';
import type { RuntimeEvent } from '../../src/core/runtime/runtime.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import { exportSession, importSession } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import type { MigrationRelayJson } from '../support/migrate-commands.ts';
import { fromBase64 } from '../support/state-image-json.ts';

/** Long enough that both moves land mid-generation (the tiny model never emits EOS). */
const MAX_TOKENS = 1500;
const TASK = 'Tell me the whole story of the ferry and the harbour.';

let relay: MigrationRelayJson;
let components: Record<string, ComponentFiles>;
let model: Blob;
const clients: AgentClient[] = [];

beforeAll(async () => {
  relay = await commands.startMigrationRelay(location.origin);
  components = { [relay.agent.id]: Object.fromEntries(Object.entries(relay.agent.files).map(([f, b]) => [f, fromBase64(b)])) };
  model = new Blob([generateTinyModel({ ctx: 4096 }) as Uint8Array<ArrayBuffer>]);
}, 180_000);

afterAll(async () => {
  for (const c of clients) await c.terminate();
  await commands.stopMigrationRelay();
});

const base = () => ({ components, engine: { kind: 'wllama' as const, model, contextSize: 4096 }, sampling: { maxTokens: MAX_TOKENS, temperature: 0, seed: 0 } });

async function agent(): Promise<AgentClient> {
  const client = new AgentClient();
  clients.push(client);
  await client.start({ ...base(), agent: relay.agent.id, tools: [] });
  return client;
}

/** Every generation event of the session's current branch, oldest first. */
async function generations(file: Uint8Array): Promise<Extract<SessionEvent, { type: 'generation' }>[]> {
  const store = createMemoryStore();
  const session = await Session.open(store, await importSession(store, file));
  const history = await session.history();
  return history.reverse().flatMap((h) => h.checkpoint.events.filter((e): e is Extract<SessionEvent, { type: 'generation' }> => e.type === 'generation'));
}

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const t0 = performance.now();
  while (!ok()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('a session moves mid-generation from the page to the cloud worker and back', () => {
  /** The token ids of the run that never moved. */
  let reference: number[] = [];

  it('keeps streaming, and its token ids equal an unmigrated greedy run', async () => {
    // The reference: the same session, never moved.
    const still = await agent();
    const referenceStream: number[] = [];
    const replies: string[] = [];
    await still.subscribe((e: RuntimeEvent) => {
      if (e.type === 'token' && e.id !== null) referenceStream.push(e.id);
      if (e.type === 'reply') replies.push(e.text);
    });
    await still.send({ type: 'start', task: TASK });
    reference = (await generations(await still.exportSession())).flatMap((g) => g.tokens);
    expect(reference).toHaveLength(MAX_TOKENS);
    expect(referenceStream).toEqual(reference);

    // The moved run.
    const moving = await agent();
    const stream: { where: PlacedEvent['where']; id: number }[] = [];
    const cloudEvents: string[] = [];
    const movedReplies: string[] = [];
    const mover = new SessionMover({
      agent: moving,
      relay: new RelayClient(relay.url),
      reopen: (file) => moving.start({ ...base(), file }),
      onEvent: ({ where, event }) => {
        if (where === 'cloud') cloudEvents.push(event.type);
        if (event.type === 'token' && typeof event.id === 'number') stream.push({ where, id: event.id });
        if (event.type === 'reply' && typeof event.text === 'string') movedReplies.push(event.text);
      },
    });
    const local = mover.send({ type: 'start', task: TASK });
    await until('40 tokens on the device', () => stream.length >= 40);
    const t0 = performance.now();
    const run = await mover.moveToCloud();
    expect(run.status).toBe('running');
    await local;
    await until('a token from the cloud worker', () => stream.some((s) => s.where === 'cloud'));
    const firstCloudToken = performance.now() - t0;
    await until('30 tokens from the cloud worker', () => stream.filter((s) => s.where === 'cloud').length >= 30);
    const t1 = performance.now();
    const back = await mover.bringBack();
    const backMs = performance.now() - t1;
    // The cloud's generation was cut too: the session comes back with it pending, and continues here.
    expect(back.state.cut, 'the hand-back landed after the cloud finished the generation').toBeDefined();
    await until('the local continuation to finish', () => movedReplies.length > 0, 120_000);
    await mover.settled();

    // The stream went device → cloud → device, with no token lost or repeated.
    const segments = stream.map((s) => s.where).filter((w, i, all) => i === 0 || all[i - 1] !== w);
    expect(segments).toEqual(['device', 'cloud', 'device']);
    const counts = { device: stream.filter((s) => s.where === 'device').length, cloud: stream.filter((s) => s.where === 'cloud').length };
    expect(counts.cloud).toBeGreaterThan(0);
    expect(stream.map((s) => s.id)).toEqual(reference);
    expect(cloudEvents).toContain('resumed');
    expect(cloudEvents).toContain('published');

    // The transcript: three pieces of one generation (wllama, node-llama-cpp, wllama), token-identical in sum.
    const moved = await generations(await moving.exportSession());
    expect(moved.map((g) => [g.engine.id, g.finish])).toEqual([
      ['wllama', 'abort'],
      ['node-llama-cpp', 'abort'],
      ['wllama', 'length'],
    ]);
    expect(moved.flatMap((g) => g.tokens)).toEqual(reference);
    expect(movedReplies).toEqual(replies);
    console.info(`migrate: ${counts.device} tokens on the device, ${counts.cloud} in the cloud, of ${reference.length}; move → first cloud token ${firstCloudToken.toFixed(0)} ms; bring back → reopened here ${backMs.toFixed(0)} ms`);
  });

  it('a move that cannot reach the relay fails with a typed error, and the session goes on here untouched', async () => {
    const local = await agent();
    const tokens: number[] = [];
    const mover = new SessionMover({
      agent: local,
      // Nothing listens there: every request fails.
      relay: new RelayClient('http://127.0.0.1:9', { timeoutMs: 2000 }),
      reopen: (file) => local.start({ ...base(), file }),
      onEvent: ({ event }) => {
        if (event.type === 'token' && typeof event.id === 'number') tokens.push(event.id);
      },
    });
    const run = mover.send({ type: 'start', task: TASK });
    await until('20 tokens on the device', () => tokens.length >= 20);
    const failed = await mover.moveToCloud().then(() => undefined, (err: unknown) => err);
    expect(failed).toMatchObject({ name: 'FerryError' });
    expect((failed as { code: string }).code).toMatch(/^(relay|protocol)\//);
    expect((failed as Error).message).toMatch(/stays on this device/);
    expect(mover.placement).toBe('device');
    await run;
    // The cut generation continues here, and the whole is still the unmigrated run's.
    await mover.send({ type: 'resume' });
    const whole = (await generations(await local.exportSession())).flatMap((g) => g.tokens);
    expect(whole).toEqual(tokens);
    expect(whole).toEqual(reference);
  });

  it('device → device: cut mid-generation, published, opened from the share link by another agent worker, which finishes it identically', async () => {
    const a = await agent();
    const streamed: number[] = [];
    await a.subscribe((e: RuntimeEvent) => {
      if (e.type === 'token' && e.id !== null) streamed.push(e.id);
    });
    const run = a.send({ type: 'start', task: TASK });
    await until('30 tokens on device A', () => streamed.length >= 30);
    await a.cancel();
    const paused = await run;
    expect(paused.state.cut?.tokens.length).toBeGreaterThanOrEqual(30);
    const relayClient = new RelayClient(relay.url);
    const storeA = createMemoryStore();
    const shared = await relayClient.publish(storeA, await importSession(storeA, await a.exportSession()));

    // B: its own worker, engine and store; it knows only the link.
    const b = new AgentClient();
    clients.push(b);
    const storeB = createMemoryStore();
    const { sessionId } = await importShareLink(shared.link, storeB);
    const opened = await b.start({ ...base(), file: await exportSession(storeB, sessionId) });
    expect(opened.state.cut?.tokens).toEqual(paused.state.cut?.tokens);
    await b.subscribe((e: RuntimeEvent) => {
      if (e.type === 'token' && e.id !== null) streamed.push(e.id);
    });
    await b.send({ type: 'resume' });
    expect(streamed).toEqual(reference);
    expect((await generations(await b.exportSession())).flatMap((g) => g.tokens)).toEqual(reference);
  });
});
