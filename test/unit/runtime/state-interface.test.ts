/**
 * A component that exports the `state` interface (the `journal` fixture) is checkpointed through its own
 * snapshot()/restore() rather than its memory image: reopened, rolled back and forked like any other.
 */
import { Session } from '../../../src/core/session/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { readChain } from '../../../src/core/runtime/checkpoint.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { snapshotOf } from '../../../src/core/runtime/state-codec.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { agentRig, setupFor, turn, type Fixtures } from '../../support/runtime-agent.ts';

let f: Fixtures;
let engine: Engine;

beforeAll(async () => void ({ f, engine } = await agentRig()), 240_000);
afterAll(() => engine?.dispose());

describe('the state interface', () => {
  it('checkpoints through snapshot(), restores through restore(): reopen and rollback see the exact state', async () => {
    const store = createMemoryStore();
    const setup = setupFor(f, engine);
    const runtime = await AgentRuntime.create(store, setup, { agent: f.ids.scribe, tools: [f.ids.tally, f.ids.journal] });
    const say = async (text: string, first = false) => (await turn(runtime, text, first)).replies;
    expect(await say('/call journal {"add":"one"}', true)).toEqual(['journal ok: ["one"]']);
    const afterOne = runtime.head;
    expect(await say('/call journal {"add":"two"}')).toEqual(['journal ok: ["one","two"]']);

    // What the session holds for the journal is its own snapshot, not pages.
    const snapshot = snapshotOf(await readChain(runtime.session, runtime.head, 'tool.journal'));
    expect(snapshot).toBeInstanceOf(Uint8Array);
    expect(snapshotOf(await readChain(runtime.session, runtime.head, 'tool.tally'))).toBeUndefined();

    const reopened = await AgentRuntime.open(store, setup, runtime.session.id);
    expect((await turn(reopened, '/call journal {}')).replies).toEqual(['journal ok: ["one","two"]']);

    await (await Session.open(store, runtime.session.id)).rollback(afterOne);
    expect(await runtime.reload()).toBe(true);
    expect(await say('/call journal {}')).toEqual(['journal ok: ["one"]']);
  });
});
