/**
 * Automatic placement at a step boundary (src/browser/auto-placement.ts `beforeStep`), against a real relay with
 * its embedded cloud worker on the tiny generated model: this device's speed comes from its last generation's
 * tokens, the fleet from the relay, and the product's policy decides whether the next step moves. And mid-reply: a
 * reply here that slows down is moved, and the watch that decides it counts the prefix a worker holds for the session.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AutoPlacer, type AutoPlacementContext } from '../../src/browser/auto-placement.ts';
import { nextStep } from '../../src/browser/next-step.ts';
import type { Decision, PlacementPrefs } from '../../src/core/placement/index.ts';
import { fetchSnapshot, parseWire, RelayHttp, WorkerListSchema, workerPaths } from '../../src/core/protocol/index.ts';
import { Session } from '../../src/core/session/index.ts';
import { tinyModelFile } from '../support/runtime-agent.ts';
import { waitFor } from '../support/wait.ts';
import { usePrefixHolder } from './api/prefix-holder.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';

describe('automatic placement at a step boundary', () => {
  let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
  let relay: TestRelay;
  let worker: string;
  let model: string;

  beforeAll(async () => {
    dirs = await makeTempDirs();
    relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: await tinyModelFile(), embeddedWorker: true });
    for (;;) {
      const list = parseWire(WorkerListSchema, await (await fetch(`${relay.url}${workerPaths.list}`)).json(), 'worker list', 'relay/bad-response');
      const ready = list.workers.find((w) => w.profile.decodeTps > 0);
      if (ready) {
        worker = ready.id;
        model = ready.profile.model;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    await relay?.close();
    await dirs?.cleanup();
  });

  /** A placer whose clock the test drives, deciding with `prefs`. */
  function placer(prefs: PlacementPrefs | undefined, decisions: Decision[] = []) {
    let now = 0;
    const asked = { context: 0 };
    const context = async (): Promise<AutoPlacementContext | undefined> => (asked.context++, prefs ? { relay: relay.url, prefs } : undefined);
    const p = new AutoPlacer({
      context,
      step: async () => ({ model, promptTokens: 600, expectedOutputTokens: 256, replyLimit: 256 }),
      move: () => {
        throw new Error('no generation runs in this test: nothing should move mid-generation');
      },
      onDecision: (d) => decisions.push(d),
      now: () => now,
    });
    /** One generation here of `tokens` tokens at `tps` tokens per second (drafted here and verified remotely: `speculative`). */
    const generate = (tokens: number, tps: number, speculative = false): void => {
      p.event({ type: 'step', step: 1, input: 'user-message' }, speculative);
      for (let i = 0; i < tokens; i++) {
        p.event({ type: 'token', text: 'x', id: 1 }, speculative);
        now += 1000 / tps;
      }
      p.event({ type: 'generation', text: 'x'.repeat(tokens), finishReason: 'stop', tokens: Array.from({ length: tokens }, () => 1) }, speculative);
    };
    return { placer: p, generate, asked };
  }

  test('a device that generated slowly here hands the next step to the faster worker, and says why', async () => {
    const { placer: p, generate } = placer({ objective: 'fastest', privacy: 'any' });
    expect(await p.beforeStep()).toBeUndefined(); // nothing measured here yet: the step runs here
    generate(40, 2);
    const placed = await p.beforeStep();
    expect(placed?.decision.move).toBe(true);
    expect(placed?.decision.nodeId).toBe(worker);
    expect(placed?.where).toEqual({ node: worker });
    expect(placed?.decision.reason).toMatch(/^Moved to .+: .* vs .* on this device/);
  });

  test('a device that keeps up stays, and the decision it made is reported', async () => {
    const decisions: Decision[] = [];
    const { placer: p, generate } = placer({ objective: 'fastest', privacy: 'any' }, decisions);
    generate(40, 1e6);
    expect(await p.beforeStep()).toBeUndefined();
    expect(decisions).toHaveLength(1);
    expect(decisions[0]!.nodeId).toBe('this-device');
    expect(decisions[0]!.reason).toMatch(/this device/);
  });

  test('private sessions, automatic placement off, and a session brought back by hand never move', async () => {
    for (const prefs of [{ objective: 'fastest', privacy: 'this-device' } as const, undefined]) {
      const { placer: p, generate } = placer(prefs);
      generate(40, 2);
      expect(await p.beforeStep()).toBeUndefined();
    }
    const { placer: held, generate } = placer({ objective: 'fastest', privacy: 'any' });
    generate(40, 2);
    held.hold();
    expect(await held.beforeStep()).toBeUndefined();
  });

  test('a generation too short to measure leaves the last measurement, and an unreachable relay keeps the step here', async () => {
    const { placer: p, generate } = placer({ objective: 'fastest', privacy: 'any' });
    generate(3, 2);
    expect(await p.beforeStep()).toBeUndefined();
    let now = 0;
    const away = new AutoPlacer({
      context: async () => ({ relay: 'http://127.0.0.1:9', prefs: { objective: 'fastest', privacy: 'any' } }),
      step: async () => ({ model, promptTokens: 600, expectedOutputTokens: 256, replyLimit: 256 }),
      move: () => undefined,
      now: () => (now += 500),
    });
    away.event({ type: 'step', step: 1, input: 'user-message' });
    for (let i = 0; i < 40; i++) away.event({ type: 'token', text: 'x', id: 1 });
    away.event({ type: 'generation', text: '', finishReason: 'stop', tokens: [] });
    expect(await away.beforeStep()).toBeUndefined();
  });

  test("a speculative generation's tokens are not timed as this device's decode speed, nor watched as its own", async () => {
    const decisions: Decision[] = [];
    const { placer: p, generate, asked } = placer({ objective: 'fastest', privacy: 'any' }, decisions);
    // Slow tokens, drafted here and verified by the worker: their pace is the mode's, not this device's alone.
    generate(40, 2, true);
    expect(asked.context).toBe(0); // no live watch was prepared with them as this device's rate
    expect(await p.beforeStep(true)).toBeUndefined(); // and no speed here was measured to decide with
    expect(decisions).toEqual([]);
    // The same pace plainly here is this device's own: the watch prepares, and the next step is decided.
    const asks = asked.context;
    generate(40, 2);
    expect(asked.context).toBe(asks + 1);
    expect((await p.beforeStep())?.decision.nodeId).toBe(worker);
  });
});

describe('automatic placement mid-reply and a held prefix', () => {
  const prefixRig = usePrefixHolder();

  test("a reply here that slows down moves to the worker holding the session's prefix, counted in the watch's estimate", async () => {
    const { relay, store, sessionId, published, listWorkers } = prefixRig();
    await prefixRig().runThere('tell me a story');
    await fetchSnapshot(new RelayHttp({ baseUrl: relay.url }), published.snapshot.id, published.key, store, { engine: null });
    const holder = (await listWorkers()).workers[0]!;
    expect(holder.prefixes?.length).toBeGreaterThan(0);
    const session = await Session.open(store, sessionId);
    let now = 0;
    const moved: Decision[] = [];
    const p = new AutoPlacer({
      context: async () => ({ relay: relay.url, prefs: { objective: 'fastest', privacy: 'any' } }),
      // The session's own next step, its prefix keyed with the key the worker's run used; a long reply expected.
      step: async () => ({ ...(await nextStep(session, { replyTokens: 256, contextSize: 2048 }, published.key)), expectedOutputTokens: 256 }),
      move: (_where, decision) => void moved.push(decision),
      now: () => now,
    });
    p.event({ type: 'step', step: 1, input: 'user-message' });
    // The first tokens come fast: they set this device's estimate, and the watch starts.
    for (let i = 0; i < 16; i++) {
      p.event({ type: 'token', text: 'x', id: 1 });
      now += 20;
    }
    await waitFor('the watch to start', () => p.watching);
    // Then this device slows right down: the watch moves the reply on.
    for (let i = 0; i < 200 && moved.length === 0; i++) {
      now += 2000;
      p.event({ type: 'token', text: 'x', id: 1 });
    }
    expect(moved).toHaveLength(1);
    expect(moved[0]!.nodeId).toBe(holder.id);
    expect(moved[0]!.candidates.find((c) => c.nodeId === holder.id)!.prefixTokens).toBeGreaterThan(0);
  }, 120_000);
});
