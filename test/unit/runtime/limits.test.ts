/**
 * Limits: tools run in worker threads; a call that loops forever is stopped by terminating its worker, a call
 * that grows memory past the limit is refused, and in both cases the session is restored from its last
 * checkpoint — intact, resumable, the step reported as failed, nothing acknowledged lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { threadedTools } from '../../../server/runtime/node-tools.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { agentRig, setupFor, turn, type Fixtures } from '../../support/runtime-agent.ts';

const BUILD_TIMEOUT = 240_000;
/** Each test starts tools in worker threads (loading and compiling each component there): slow on a busy machine. */
const TEST_TIMEOUT = 180_000;
/** Generous: a normal call takes well under a millisecond, but the machines are shared and noisy. */
const TIME_LIMIT_MS = 3_000;
let f: Fixtures;
let engine: Engine;

beforeAll(async () => void ({ f, engine } = await agentRig()), BUILD_TIMEOUT);
afterAll(() => engine?.dispose());

async function threadedRuntime(store = createMemoryStore()) {
  const setup = setupFor(f, engine, { startTool: threadedTools({ timeMs: TIME_LIMIT_MS, memoryBytes: 48 << 20 }) });
  return { store, setup, runtime: await AgentRuntime.create(store, setup, { agent: f.ids.scribe, tools: [f.ids.tally, f.ids.spinner] }) };
}

describe('tool limits', () => {
  it('an endless tool call is terminated; the session is restored from its last checkpoint and resumes', async () => {
    const { store, setup, runtime } = await threadedRuntime();
    try {
      await turn(runtime, 'hello world', true);
      expect((await turn(runtime, '/call spinner {}')).replies).toEqual(['spinner ok: {"count":1}']);
      const before = runtime.head;
      const t0 = performance.now();
      const failed = await turn(runtime, '/call spinner {"spin":true}');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(TIME_LIMIT_MS - 50);
      const event = failed.events.find((e) => e.type === 'step-failed');
      expect(event).toMatchObject({ type: 'step-failed', restoredTo: before, error: { code: 'runtime/step-failed', cause: { code: 'runtime/tool-time-limit' } } });
      expect(failed.events.at(-1)).toEqual({ type: 'step-failed', step: expect.any(Number), error: expect.anything(), restoredTo: before });
      // The failure is recorded as a new checkpoint whose parent is the last good one.
      const [head, parent] = await runtime.session.history();
      expect(head!.id).toBe(runtime.head);
      expect(parent!.id).toBe(before);
      expect(runtime.loopState.status).toBe('idle');

      // Resumable: the counter is where the last checkpoint left it (the spin call's count++ is gone), and the
      // other tool's state is untouched.
      expect((await turn(runtime, '/call spinner {}')).replies).toEqual(['spinner ok: {"count":2}']);
      expect((await turn(runtime, '/call tally {"op":"list"}')).replies).toEqual(['tally ok: ["1:turn 1"]']);

      // And a fresh runtime opened from the store sees the same session.
      const reopened = await AgentRuntime.open(store, setup, runtime.session.id);
      try {
        expect((await turn(reopened, '/call spinner {}')).replies).toEqual(['spinner ok: {"count":3}']);
      } finally {
        await reopened.dispose();
      }
    } finally {
      await runtime.dispose();
    }
  }, TEST_TIMEOUT);

  it('a tool call that grows memory past the limit fails the step; state is restored', async () => {
    const { runtime } = await threadedRuntime();
    try {
      await turn(runtime, 'hello world', true);
      expect((await turn(runtime, '/call spinner {"grow":1}')).replies).toEqual(['spinner ok: {"count":1}']);
      const failed = await turn(runtime, '/call spinner {"grow":64}');
      expect(failed.events.find((e) => e.type === 'step-failed')).toMatchObject({ error: { cause: { code: 'runtime/tool-memory-limit' } } });
      expect((await turn(runtime, '/call spinner {}')).replies).toEqual(['spinner ok: {"count":2}']);
    } finally {
      await runtime.dispose();
    }
  }, TEST_TIMEOUT);
});
