/**
 * A move warms its destination while a reply streams (host/move-ahead.ts): the order of a move's steps, seen through
 * runners that only record what they are asked (what a warm does on a node is tested with a real relay and engine in
 * prefill-ahead.test.ts; moves of real sessions in relay-runner.test.ts and the browser's migrate.test.ts).
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { FerryError } from '../../../src/core/errors.ts';
import type { Prompt } from '../../../src/core/llm/engine.ts';
import { WARM_WAIT_MS } from '../../../src/core/host/move-ahead.ts';
import { move, type SessionRunner } from '../../../src/core/host/session-runner.ts';

const FAILURE = { code: 'relay/move-failed' as const, message: 'The session could not move' };
const PROMPT: Prompt = { messages: [{ role: 'user', content: 'a long story, please' }] };
const GREEDY = { prompt: PROMPT, temperature: 0 };

/** A runner that records the calls made to it, in one log shared by both ends of a move. */
function runner(name: string, log: string[], parts: Partial<SessionRunner> = {}): SessionRunner {
  return {
    sessionId: 's',
    running: false,
    send: async () => void log.push(`${name}.send`),
    resume: async () => void log.push(`${name}.resume`),
    stop: async () => void log.push(`${name}.stop`),
    settled: async () => undefined,
    close: async () => undefined,
    ...parts,
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('a move warms its destination while the reply streams', () => {
  test('the destination is warmed with the streaming prompt before the source stops', async () => {
    const log: string[] = [];
    const from = runner('from', log, { generating: async () => GREEDY });
    const to = runner('to', log, { warm: async (prompt) => void log.push(`to.warm ${JSON.stringify(prompt)}`) });
    expect(await move(from, to, FAILURE)).toBe(to);
    expect(log).toEqual([`to.warm ${JSON.stringify(PROMPT)}`, 'from.stop', 'to.resume']);
  });

  test('nothing streaming, a sampled reply, or a destination that cannot be warmed: the move goes on as it is', async () => {
    const log: string[] = [];
    await move(runner('from', log, { generating: async () => undefined }), runner('to', log, { warm: async () => void log.push('to.warm') }), FAILURE);
    await move(runner('from', log, { generating: async () => ({ prompt: PROMPT, temperature: 0.8 }) }), runner('to', log, { warm: async () => void log.push('to.warm') }), FAILURE);
    await move(runner('from', log, { generating: async () => GREEDY }), runner('to', log), FAILURE);
    await move(runner('from', log), runner('to', log, { warm: async () => void log.push('to.warm') }), FAILURE);
    expect(log).toEqual(['from.stop', 'to.resume', 'from.stop', 'to.resume', 'from.stop', 'to.resume', 'from.stop', 'to.resume']);
  });

  test('a warm that fails, or a source that cannot say what streams, does not fail the move', async () => {
    const log: string[] = [];
    const refused = runner('to', log, { warm: async () => Promise.reject(new FerryError('relay/no-worker', 'No worker')) });
    expect(await move(runner('from', log, { generating: async () => GREEDY }), refused, FAILURE)).toBe(refused);
    const unknown = runner('to', log, { warm: async () => void log.push('to.warm') });
    expect(await move(runner('from', log, { generating: async () => Promise.reject(new Error('worker gone')) }), unknown, FAILURE)).toBe(unknown);
    expect(log).toEqual(['from.stop', 'to.resume', 'from.stop', 'to.resume']);
  });

  test('a warm that takes too long is not waited for past WARM_WAIT_MS', async () => {
    vi.useFakeTimers();
    const log: string[] = [];
    const to = runner('to', log, { warm: () => new Promise<void>(() => log.push('to.warm')) });
    const moved = move(runner('from', log, { generating: async () => GREEDY }), to, FAILURE);
    await vi.advanceTimersByTimeAsync(WARM_WAIT_MS - 1);
    expect(log).toEqual(['to.warm']);
    await vi.advanceTimersByTimeAsync(1);
    expect(await moved).toBe(to);
    expect(log).toEqual(['to.warm', 'from.stop', 'to.resume']);
  });
});
