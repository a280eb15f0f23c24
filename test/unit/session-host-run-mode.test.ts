/**
 * The session host keeps how a session runs here across a reload: one switched to run here speculatively (drafted
 * here, verified by the relay's worker) is opened so again by a new host over the same data (a reloaded page), its
 * runner asks the worker for a speculative run, "Where it runs" and the session list say so; switched back to this
 * device alone, a reload runs it plainly. The device worker is a stand-in that records the runners it is asked for;
 * this device's data is real (fake-indexeddb in Node).
 */
import 'fake-indexeddb/auto';
import { describe, expect, it } from 'vitest';
import type { SessionRunner } from '../../src/core/host/index.ts';
import type { DeviceWorker } from '../../src/browser/device-worker.ts';
import { LocalData } from '../../src/browser/local-data.ts';
import { HERE, SPECULATIVE, type Placement } from '../../src/browser/placement.ts';
import { SessionHost } from '../../src/browser/session-host.ts';
import type { ModelChoice } from '../../src/browser/settings.ts';
import { waitFor } from '../support/wait.ts';

const RELAY = 'https://relay.example';
const MODEL: ModelChoice = { source: 'relay', id: 'a'.repeat(64), name: 'tiny.gguf', bytes: 1024, contextSize: 512, url: `${RELAY}/models/tiny.gguf` };

/** A worker whose runners do nothing; `asked` is the speculative options each runner was made with. */
function standInWorker(): { worker: DeviceWorker; asked: ({ verifyUrl: string } | undefined)[] } {
  const asked: ({ verifyUrl: string } | undefined)[] = [];
  const runner = (sessionId: string, _model: ModelChoice, _onEvent: unknown, speculative?: { verifyUrl: string }): SessionRunner => {
    asked.push(speculative);
    const idle = async () => undefined;
    return { sessionId, send: idle, resume: idle, stop: idle, running: false, settled: idle, close: idle };
  };
  return { worker: { runner } as unknown as DeviceWorker, asked };
}

/** A page's session host over `data` (a reload is a new host over the same data). */
function page(data: LocalData): { host: SessionHost; asked: ({ verifyUrl: string } | undefined)[]; placements: Placement[] } {
  const { worker, asked } = standInWorker();
  const placements: Placement[] = [];
  const host = new SessionHost({
    data,
    worker,
    relay: () => RELAY,
    limits: () => ({ replyTokens: 64, contextSize: 512, gpuModel: '', ggufOnGpu: false, sampling: {} as never }),
    model: () => MODEL,
    onEvent: () => undefined,
    onPlacement: (_id, p) => placements.push(p),
  });
  return { host, asked, placements };
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
});
