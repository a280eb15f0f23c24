/**
 * A session marked private in its own right never leaves the device: publishing it (what Share and Move do) is
 * refused in the core with session/private and a reason, before anything reaches the relay; its forked children
 * run here, saying why, even when the runtime was set up to spread them over a space's nodes. Unmarked, it goes
 * as before. The mark stays with the session as it changes, and is the device's alone (no sync carries it).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Engine } from '../../src/core/llm/engine.ts';
import type { ChildProgress } from '../../src/core/runtime/index.ts';
import { relayChildren } from '../../src/core/parallel/index.ts';
import { RelayHttp, publishSession } from '../../src/core/protocol/index.ts';
import { AgentRuntime } from '../../src/core/runtime/runtime.ts';
import { exportSession, importSession, isSessionPrivate, setSessionPrivate } from '../../src/core/snapshot/index.ts';
import { createMemoryStore } from '../../src/core/store/index.ts';
import { refusal } from '../support/refusal.ts';
import { agentRig, loader, turn, type Fixtures } from '../support/runtime-agent.ts';

describe('a private session never leaves the device', () => {
  let f: Fixtures;
  let engine: Engine;
  beforeAll(async () => void ({ f, engine } = await agentRig()), 240_000);
  afterAll(() => engine?.dispose());
  const calls: string[] = [];
  const fetchThatRecords: typeof fetch = async (input) => {
    calls.push(String(input));
    throw new Error('the relay must not be asked');
  };

  test('publishing (Share, Move) is refused with the reason, before any request; unmarked, it publishes', async () => {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, { engine, load: loader(f), sampling: { maxTokens: 8, temperature: 0, seed: 0 } }, { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'keep this to myself', true);
    const id = runtime.session.id;
    await setSessionPrivate(store, id, true);
    expect(await isSessionPrivate(store, id)).toBe(true);
    // It stays private as the session goes on.
    await turn(runtime, 'and this too');
    expect(await isSessionPrivate(store, id)).toBe(true);
    await runtime.dispose();

    const relay = new RelayHttp({ baseUrl: 'http://relay.invalid', fetch: fetchThatRecords });
    const err = await refusal(() => publishSession(store, id, relay));
    expect(err).toMatchObject({ code: 'session/private', details: { action: 'publish' } });
    expect(err.message).toMatch(/never leaves this device.*Turn off "Private"/);
    expect(calls).toEqual([]);

    // The mark is this device's: a copy made elsewhere from an export is not private.
    const elsewhere = createMemoryStore();
    await importSession(elsewhere, await exportSession(store, id));
    expect(await isSessionPrivate(elsewhere, id)).toBe(false);

    await setSessionPrivate(store, id, false);
    expect(await isSessionPrivate(store, id)).toBe(false);
    await expect(publishSession(store, id, relay)).rejects.toMatchObject({ code: 'relay/unreachable' });
    expect(calls.length).toBeGreaterThan(0);
  });

  test('its forked children run here, saying why, though the runtime would spread them over a space', async () => {
    calls.length = 0;
    const store = createMemoryStore();
    const progress: ChildProgress[] = [];
    const sampling = { maxTokens: 8, temperature: 0, seed: 0 };
    const setup = {
      engine,
      load: loader(f),
      sampling,
      runChildren: relayChildren({ relayUrl: 'http://relay.invalid', space: 'A'.repeat(43), setup: { engine, load: loader(f), sampling }, fetch: fetchThatRecords, onProgress: (p) => progress.push(p) }),
    };
    const runtime = await AgentRuntime.create(store, setup, { agent: f.ids.scribe, tools: [f.ids.tally] });
    await setSessionPrivate(store, runtime.session.id, true);
    const { events } = await turn(runtime, '/fork first|second', true);
    const children = events.find((e) => e.type === 'children');
    expect(children).toMatchObject({ results: [{ id: 'child0', ok: true }, { id: 'child1', ok: true }] });
    expect(progress[0]).toMatchObject({ type: 'here', children: 2, reason: expect.stringMatching(/private.*forked children on this device/) });
    expect(calls).toEqual([]);
    await runtime.dispose();
  });
});
