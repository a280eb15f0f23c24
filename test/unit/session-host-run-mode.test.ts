/**
 * The session host keeps how a session runs here across a reload: one switched to run here speculatively (drafted
 * here, verified by the relay's worker) is opened so again by a new host over the same data (a reloaded page), its
 * runner asks the worker for a speculative run, "Where it runs" and the session list say so; switched back to this
 * device alone, a reload runs it plainly. The device worker is a stand-in that records the runners it is asked for;
 * this device's data is real (fake-indexeddb in Node).
 */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import type { RunnerListener, SessionRunner } from '../../src/core/host/index.ts';
import type { AutoPlacementContext } from '../../src/browser/auto-placement.ts';
import type { DeviceWorker } from '../../src/browser/device-worker.ts';
import { LocalData } from '../../src/browser/local-data.ts';
import { HERE, SPECULATIVE, type Placement } from '../../src/browser/placement.ts';
import { SessionHost } from '../../src/browser/session-host.ts';
import type { ModelChoice } from '../../src/browser/settings.ts';
import { waitFor } from '../support/wait.ts';

const RELAY = 'https://relay.example';
const MODEL: ModelChoice = { source: 'relay', id: 'a'.repeat(64), name: 'tiny.gguf', bytes: 1024, contextSize: 512, url: `${RELAY}/models/tiny.gguf` };

/** A worker whose runners do nothing; `asked` is the speculative options each runner was made with, `heard` each runner's listener. */
function standInWorker(): { worker: DeviceWorker; asked: ({ verifyUrl: string } | undefined)[]; heard: RunnerListener[] } {
  const asked: ({ verifyUrl: string } | undefined)[] = [];
  const heard: RunnerListener[] = [];
  const runner = (sessionId: string, _model: ModelChoice, onEvent: RunnerListener, speculative?: { verifyUrl: string }): SessionRunner => {
    asked.push(speculative);
    heard.push(onEvent);
    const idle = async () => undefined;
    return { sessionId, send: idle, resume: idle, stop: idle, running: false, settled: idle, close: idle };
  };
  return { worker: { runner } as unknown as DeviceWorker, asked, heard };
}

/** A page's session host over `data` (a reload is a new host over the same data). */
function page(data: LocalData, autoPlacement?: () => Promise<AutoPlacementContext | undefined>): { host: SessionHost; asked: ({ verifyUrl: string } | undefined)[]; heard: RunnerListener[]; placements: Placement[] } {
  const { worker, asked, heard } = standInWorker();
  const placements: Placement[] = [];
  const host = new SessionHost({
    data,
    worker,
    relay: () => RELAY,
    limits: () => ({ replyTokens: 64, contextSize: 512, gpuModel: '', ggufOnGpu: false, sampling: {} as never }),
    model: () => MODEL,
    onEvent: () => undefined,
    onPlacement: (_id, p) => placements.push(p),
    ...(autoPlacement ? { autoPlacement } : {}),
  });
  return { host, asked, heard, placements };
}

describe('how a session runs here survives a reload', () => {
  it('a session switched to run speculatively runs so again after a reload, and the list says so; switched back, plainly', async () => {
    const data = await LocalData.open({ storeName: 'ferry-run-mode-store', appDbName: 'ferry-run-mode-app' });
    const id = '0123456789abcdef0123456789abcdef';
    await data.sessions.register(id, 'assistant', 'b'.repeat(64), 'Verified here');

    const first = page(data);
    await first.host.move(id, MODEL, { here: true, speculative: true });
    expect(first.host.placement(id)).toEqual({ state: 'here', name: SPECULATIVE });
    expect(first.asked.at(-1)).toEqual({ verifyUrl: 'wss://relay.example/api/v2/verify' });
    await waitFor('the list to say it runs speculatively', async () => (await data.sessions.get(id)).speculative === true, { timeoutMs: 10_000 });

    // Reloaded: the session screen asks the new host to resume the session.
    const reloaded = page(data);
    expect(await reloaded.host.resume(id, MODEL)).toEqual({ state: 'here', name: SPECULATIVE });
    expect(reloaded.host.placement(id)).toEqual({ state: 'here', name: SPECULATIVE });
    expect(reloaded.asked).toEqual([{ verifyUrl: 'wss://relay.example/api/v2/verify' }]);
    expect(await data.sessions.get(id)).toMatchObject({ runsOn: SPECULATIVE, speculative: true });

    // Back to this device alone: the next reload runs it plainly (and a host that runs it first by a move, too).
    await reloaded.host.move(id, MODEL, { here: true });
    expect(reloaded.asked.at(-1)).toBeUndefined();
    await waitFor('the list to say it runs plainly here', async () => {
      const meta = await data.sessions.get(id);
      return meta.runsOn === HERE && meta.speculative === undefined;
    }, { timeoutMs: 10_000 });
    const again = page(data);
    expect(await again.host.resume(id, MODEL)).toEqual({ state: 'here', name: HERE });
    await again.host.move(id, MODEL, { here: true });
    expect(again.asked).toEqual([undefined]);
  });

  it("a speculative session's tokens are not timed as this device's speed: automatic placement prepares no watch with them", async () => {
    const data = await LocalData.open({ storeName: 'ferry-run-mode-watch-store', appDbName: 'ferry-run-mode-watch-app' });
    const ids = { speculative: 'abcdef0123456789abcdef0123456789', plain: 'fedcba9876543210fedcba9876543210' };
    for (const id of Object.values(ids)) await data.sessions.register(id, 'assistant', 'b'.repeat(64), 'Watched');
    let asked = 0;
    // Automatic placement off (no context): asking for it is the sign a live watch was being prepared.
    const { host, heard } = page(data, async () => (asked++, undefined));
    const generate = (listener: RunnerListener) => {
      listener({ type: 'step', step: 1, input: 'user-message' });
      for (let i = 0; i < 40; i++) listener({ type: 'token', text: 'x', id: 1 });
    };
    await host.move(ids.speculative, MODEL, { here: true, speculative: true });
    generate(heard.at(-1)!);
    expect(asked).toBe(0);
    await host.move(ids.plain, MODEL, { here: true });
    generate(heard.at(-1)!);
    expect(asked).toBe(1);
  });
});
