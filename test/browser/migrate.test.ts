/**
 * Live migration edge → cloud → edge (issue 6): in Chromium, the page's agent worker runs a session on wllama
 * (the tiny generated model); in the middle of a generation the session moves to the relay's embedded cloud worker
 * (node-llama-cpp, the same model file), whose tokens keep streaming to the page; it is then handed back — the
 * cloud's generation cut again mid-way — and finishes in the page. The token ids of the whole transcript, and of
 * the stream the page saw, equal those of a greedy run that never moved. The page and its worker share one
 * IndexedDB store, as in the app: the moves are the core's (`move` between an AgentRunner and a RelayRunner), which
 * publish from that store and copy every checkpoint back into it.
 *
 * Also: a move that cannot reach the relay fails with a typed error and leaves the session running here;
 * device → device, a generation cut on one agent worker is finished by another that opened the share link; and a
 * speculative run (wllama drafting in the page's worker, the relay's node-llama-cpp verifying) cut mid-reply and
 * moved to the cloud worker ends with the token ids of a cloud-only greedy run.
 *
 * The relay is `ferry start` in a child process (a browser command starts it with `--model <generated gguf>`),
 * opened to this page's origin with --allow-origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import { AgentClient } from '../../src/browser/agent-client.ts';
import { openIdbStore } from '../../src/browser/idb-store.ts';
import { RelayClient, importShareLink } from '../../src/browser/relay-client.ts';
import { AgentRunner, RelayRunner, move, type RunnerEvent } from '../../src/core/host/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { RelayHttp, verifyPath } from '../../src/core/protocol/index.ts';
import type { ComponentFiles } from '../../src/core/runtime/tool-worker.ts';
import { Session, type SessionEvent } from '../../src/core/session/index.ts';
import type { Store } from '../../src/core/store/index.ts';
import type { MigrationRelayJson } from '../support/migrate-commands.ts';
import { fromBase64 } from '../support/state-image-json.ts';
import { waitFor } from '../support/wait.ts';

/** Long enough that both moves land mid-generation (the tiny model never emits EOS). */
const MAX_TOKENS = 1500;
const TASK = 'Tell me the whole story of the ferry and the harbour.';
const FAILED = { code: 'relay/move-failed' as const, message: 'The session could not move' };

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
  await Promise.all(clients.map((c) => c.terminate()));
  await commands.stopMigrationRelay();
}, 180_000);

interface Sampling {
  readonly temperature: number;
  readonly seed: number;
}
const GREEDY: Sampling = { temperature: 0, seed: 0 };
/**
 * Sampled at temperature 0.8 with Ferry's sampler (a token is a function of the candidates and (seed, position)). The
 * two engines' probabilities differ in their last digits, so a draw that falls within that difference of a boundary
 * picks differently on each: seeds 1 to 5 part within this reply's 1,500 tokens on this random-weight model (4 at token
 * 1,368, 5 at 1,456). For this seed they agree over the whole reply, which the test checks first, so where the moves
 * cut cannot matter.
 */
const SAMPLED: Sampling = { temperature: 0.8, seed: 6 };

const base = (sampling: Sampling) => ({ components, engine: { kind: 'wllama' as const, model, contextSize: 4096 }, sampling: { maxTokens: MAX_TOKENS, ...sampling } });

/** A device: its own IndexedDB store, shared by the page and its agent worker, as in the app. */
interface Device {
  store: Store;
  client: AgentClient;
  storeName: string;
  sampling: Sampling;
}

async function device(sampling = GREEDY): Promise<Device> {
  const storeName = `migrate-${crypto.randomUUID()}`;
  const client = new AgentClient();
  clients.push(client);
  return { store: openIdbStore({ name: storeName }), client, storeName, sampling };
}

/** A new session of the test agent on `d`. */
async function newSession(d: Device): Promise<string> {
  return (await d.client.start({ ...base(d.sampling), store: d.storeName, agent: relay.agent.id, tools: [] })).sessionId;
}

/**
 * The session run by `d`'s agent worker, which follows the store before every run (as the app's device worker does).
 * `speculative`: the worker opens it drafting here, verified by the relay's worker at that address.
 */
function here(d: Device, sessionId: string, onEvent: (e: RunnerEvent) => void, speculative?: { verifyUrl: string }): AgentRunner {
  const runner = new AgentRunner({
    sessionId,
    worker: d.client,
    onEvent,
    claim: async () => {
      if (speculative) return d.client.start({ ...base(d.sampling), store: d.storeName, sessionId, speculative });
      try {
        return await d.client.reload();
      } catch {
        return d.client.start({ ...base(d.sampling), store: d.storeName, sessionId });
      }
    },
  });
  void d.client.subscribe((e) => runner.hear(e));
  return runner;
}

/** Every generation event of the session's current branch, oldest first. */
async function generations(store: Store, sessionId: string): Promise<Extract<SessionEvent, { type: 'generation' }>[]> {
  const history = await (await Session.open(store, sessionId)).history();
  return history.reverse().flatMap((h) => h.checkpoint.events.filter((e): e is Extract<SessionEvent, { type: 'generation' }> => e.type === 'generation'));
}

describe('a session moves mid-generation from the page to the cloud worker and back', () => {
  /** The token ids of the greedy run that never moved. */
  let reference: number[] = [];

  it.each([
    ['greedy', GREEDY],
    ['sampled (temperature 0.8, a fixed seed)', SAMPLED],
  ])('keeps streaming, and its token ids equal an unmigrated run: %s', async (_, sampling) => {
    // The reference: the same session, never moved.
    const still = await device(sampling);
    const stillSession = await newSession(still);
    const referenceStream: number[] = [];
    const replies: string[] = [];
    await here(still, stillSession, (e) => {
      if (e.type === 'token' && e.id !== null) referenceStream.push(e.id);
      if (e.type === 'reply') replies.push(e.text);
    }).send({ type: 'start', task: TASK });
    const unmoved = (await generations(still.store, stillSession)).flatMap((g) => g.tokens);
    expect(unmoved).toHaveLength(MAX_TOKENS);
    expect(referenceStream).toEqual(unmoved);
    if (sampling === GREEDY) reference = unmoved;
    else {
      // Sampled, the same session run wholly by the cloud worker draws the same tokens (see SAMPLED).
      const cloudOnly = await device(sampling);
      const cloudSession = await newSession(cloudOnly);
      const cloudRun = new RelayRunner({ sessionId: cloudSession, store: cloudOnly.store, relay: new RelayHttp({ baseUrl: relay.url }), onEvent: () => {} });
      await cloudRun.send({ type: 'start', task: TASK });
      await cloudRun.close();
      const drawn = (await generations(cloudOnly.store, cloudSession)).flatMap((g) => g.tokens);
      const firstDiff = drawn.findIndex((t, i) => t !== unmoved[i]);
      expect(firstDiff, 'the cloud worker, unmoved: the first token it draws otherwise').toBe(-1);
      expect(unmoved.slice(0, 200), 'sampling differs from greedy decoding').not.toEqual(reference.slice(0, 200));
    }

    // The moved run: here (the page's worker) → the relay's cloud worker → here, the store the one truth throughout.
    const d = await device(sampling);
    const sessionId = await newSession(d);
    const stream: { where: 'device' | 'cloud'; id: number }[] = [];
    const cloudEvents: string[] = [];
    const movedReplies: string[] = [];
    const kv: { where: 'device' | 'cloud'; action: string; tokens: number }[] = [];
    const heard = (where: 'device' | 'cloud') => (event: RunnerEvent) => {
      if (where === 'cloud') cloudEvents.push(event.type);
      if (event.type === 'kv') kv.push({ where, action: event.action, tokens: event.tokens });
      if (event.type === 'token' && typeof event.id === 'number') stream.push({ where, id: event.id });
      if (event.type === 'reply') movedReplies.push(event.text);
    };
    const device1 = here(d, sessionId, heard('device'));
    const cloud = new RelayRunner({ sessionId, store: d.store, relay: new RelayHttp({ baseUrl: relay.url }), onEvent: heard('cloud') });
    // A greedy reply's move first warms the worker (move-ahead.ts) while the device streams on — seconds on a busy
    // machine, publishing the session — so the device streams at a fifth of a CPU until then: the reply must still be
    // streaming when the move cuts it.
    await d.client.setCpuShare(0.2);
    const local = device1.send({ type: 'start', task: TASK });
    await waitFor('40 tokens on the device', () => stream.length >= 40);
    expect(await move(device1, cloud, FAILED)).toBe(cloud);
    await d.client.setCpuShare(1);
    await local;
    await device1.close();
    await waitFor('30 tokens from the cloud worker', () => stream.filter((s) => s.where === 'cloud').length >= 30);
    const device2 = here(d, sessionId, heard('device'));
    expect(await move(cloud, device2, FAILED)).toBe(device2);
    await cloud.close();
    // The cloud's generation was cut too: the store has it pending, and it continues here.
    await waitFor('the local continuation to finish', () => movedReplies.length > 0, { timeoutMs: 120_000 });
    await device2.settled();

    // The stream went device → cloud → device, with no token lost or repeated.
    const segments = stream.map((s) => s.where).filter((w, i, all) => i === 0 || all[i - 1] !== w);
    expect(segments).toEqual(['device', 'cloud', 'device']);
    expect(stream.map((s) => s.id)).toEqual(unmoved);
    // Each step that ran in the cloud was announced once it was in this device's store.
    expect(cloudEvents).toContain('checkpoint');
    // The worker handed back its KV with the session (node-llama-cpp's and the CPU engine's are one llama.cpp format),
    // and the device loaded it rather than prefill the transcript here.
    expect(kv.filter((k) => k.where === 'device'), JSON.stringify(kv)).toEqual([{ where: 'device', action: 'loaded', tokens: expect.any(Number) }]);
    expect(kv.find((k) => k.where === 'device')!.tokens).toBeGreaterThan(MAX_TOKENS / 10);

    // The transcript: three pieces of one generation (wllama, node-llama-cpp, wllama), token-identical in sum.
    const moved = await generations(d.store, sessionId);
    expect(moved.map((g) => [g.engine.id, g.finish])).toEqual([
      ['wllama', 'abort'],
      ['node-llama-cpp', 'abort'],
      ['wllama', 'length'],
    ]);
    expect(moved.flatMap((g) => g.tokens)).toEqual(unmoved);
    expect(movedReplies).toEqual(replies);
  });

  it('a move that cannot reach the relay fails with a typed error, and the session goes on here untouched', async () => {
    const d = await device();
    const sessionId = await newSession(d);
    const tokens: number[] = [];
    const local = here(d, sessionId, (event) => {
      if (event.type === 'token' && typeof event.id === 'number') tokens.push(event.id);
    });
    // Nothing listens there: every request fails.
    const nowhere = new RelayRunner({ sessionId, store: d.store, relay: new RelayHttp({ baseUrl: 'http://127.0.0.1:9', timeoutMs: 2000 }), onEvent: () => {} });
    const run = local.send({ type: 'start', task: TASK });
    await waitFor('20 tokens on the device', () => tokens.length >= 20);
    const failed = await move(local, nowhere, FAILED).then(() => undefined, (err: unknown) => err);
    expect(failed).toMatchObject({ name: 'FerryError' });
    expect((failed as { code: string }).code).toMatch(/^(relay|protocol)\//);
    expect((failed as Error).message).toMatch(/could not move/);
    await run;
    // The cut generation continues here, and the whole is still the unmigrated run's.
    await local.send({ type: 'resume' });
    const whole = (await generations(d.store, sessionId)).flatMap((g) => g.tokens);
    expect(whole).toEqual(tokens);
    expect(whole).toEqual(reference);
  });

  it('device → device: cut mid-generation, published, opened from the share link by another agent worker, which finishes it identically', async () => {
    const a = await device();
    const sessionId = await newSession(a);
    const streamed: number[] = [];
    const onA = here(a, sessionId, (e) => {
      if (e.type === 'token' && e.id !== null) streamed.push(e.id);
    });
    const run = onA.send({ type: 'start', task: TASK });
    await waitFor('30 tokens on device A', () => streamed.length >= 30);
    // Stopped through another runner of the session (the page makes one again after a move or a reload), which
    // started nothing: the worker's run still ends at a cut, checkpointed, before stop() resolves.
    await here(a, sessionId, () => {}).stop();
    expect(await (await Session.open(a.store, sessionId)).history()).not.toHaveLength(1);
    await run;
    const cutA = (await generations(a.store, sessionId)).at(-1)!;
    expect(cutA.finish).toBe('abort');
    const shared = await new RelayClient(relay.url).publish(a.store, sessionId);

    // B: its own worker, engine and store; it knows only the link.
    const b = await device();
    expect((await importShareLink(shared.link, b.store)).sessionId).toBe(sessionId);
    const onB = here(b, sessionId, (e) => {
      if (e.type === 'token' && e.id !== null) streamed.push(e.id);
    });
    await onB.resume();
    await onB.settled();
    expect(streamed).toEqual(reference);
    expect((await generations(b.store, sessionId)).flatMap((g) => g.tokens)).toEqual(reference);
  });
});

describe('a session drafted here and verified by the relay (speculative) moves to the cloud worker mid-reply', () => {
  it('continues there exactly: its token ids equal a cloud-only greedy run', async () => {
    // The reference: the session run wholly by the relay's cloud worker, greedy.
    const cloudOnly = await device();
    const cloudSession = await newSession(cloudOnly);
    const cloudRun = new RelayRunner({ sessionId: cloudSession, store: cloudOnly.store, relay: new RelayHttp({ baseUrl: relay.url }), onEvent: () => {} });
    await cloudRun.send({ type: 'start', task: TASK });
    await cloudRun.close();
    const cloudTokens = (await generations(cloudOnly.store, cloudSession)).flatMap((g) => g.tokens);
    expect(cloudTokens).toHaveLength(MAX_TOKENS);

    // wllama drafts in this page's agent worker, the relay's node-llama-cpp verifies; cut mid-reply, moved to the cloud.
    const d = await device();
    const sessionId = await newSession(d);
    const stream: { where: 'device' | 'cloud'; id: number }[] = [];
    const replies: string[] = [];
    const heard = (where: 'device' | 'cloud') => (event: RunnerEvent) => {
      if (event.type === 'token' && typeof event.id === 'number') stream.push({ where, id: event.id });
      if (event.type === 'reply') replies.push(event.text);
    };
    const verifyUrl = `${relay.url.replace(/^http/, 'ws')}${verifyPath}`;
    const speculative = here(d, sessionId, heard('device'), { verifyUrl });
    const cloud = new RelayRunner({ sessionId, store: d.store, relay: new RelayHttp({ baseUrl: relay.url }), onEvent: heard('cloud') });
    const local = speculative.send({ type: 'start', task: TASK });
    await waitFor('100 speculative tokens on the device', () => stream.length >= 100);
    expect(await move(speculative, cloud, FAILED)).toBe(cloud);
    await local;
    await speculative.close();
    await waitFor('the cloud worker to finish the reply', () => replies.length > 0, { timeoutMs: 120_000 });
    await cloud.settled();
    await cloud.close();

    const pieces = await generations(d.store, sessionId);
    expect(pieces.map((g) => [g.engine.id, g.finish])).toEqual([
      ['speculative', 'abort'],
      ['node-llama-cpp', 'length'],
    ]);
    expect(pieces[0]!.tokens.length).toBeGreaterThanOrEqual(100);
    expect(pieces.flatMap((g) => g.tokens)).toEqual(cloudTokens);
    expect(stream.map((s) => s.where).filter((w, i, all) => i === 0 || all[i - 1] !== w)).toEqual(['device', 'cloud']);
    expect(stream.map((s) => s.id)).toEqual(cloudTokens);
  });
});
