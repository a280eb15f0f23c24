/**
 * The action loop with a real engine (node-llama-cpp, tiny generated model) and real components (the `scribe`
 * agent, the `tally` tool): transparent checkpointing after every step — restored in another process, the session
 * continues exactly like an uninterrupted run — fork and rollback at the runtime level, and malformed tool calls
 * answered as observations.
 */
import { Session } from '../../../src/core/session/index.ts';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFsStore } from '../../../server/store/index.ts';
import type { Engine, GenerateRequest } from '../../../src/core/llm/engine.ts';
import { readImageAt } from '../../../src/core/runtime/checkpoint.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { instantiate } from '../../../src/core/runtime/index.ts';
import { fixtures, loader, setupFor, tinyEngine, tinyModelFile, turn, turns, TURNS, type Fixtures } from '../../support/runtime-agent.ts';

const BUILD_TIMEOUT = 240_000;
let f: Fixtures;
let modelPath: string;
let engine: Engine;
let scratch: string;
/** The replies of an uninterrupted run of every turn. */
let reference: string[][];

beforeAll(async () => {
  f = await fixtures();
  modelPath = await tinyModelFile();
  engine = await tinyEngine(modelPath);
  scratch = await mkdtemp(path.join(os.tmpdir(), 'ferry-loop-'));
  const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
  reference = [];
  for (const [i, text] of TURNS.entries()) reference.push((await turn(runtime, text, i === 0)).replies);
  // The workload must make the model speak and the tool hold state, or equality would prove little.
  expect(reference.flat().some((r) => /^turn \d: .+ \| notes: \d+ chars$/.test(r))).toBe(true);
  expect(reference[2]![0]).toMatch(/^tally ok: \["1:turn 1","2:turn 2"\]$/);
}, BUILD_TIMEOUT);
afterAll(async () => {
  await engine?.dispose();
  await rm(scratch, { recursive: true, force: true });
});

describe('action loop', () => {
  it('streams tokens, tool calls and results, and checkpoints after every step', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const { events, replies } = await turn(runtime, TURNS[0]!, true);
    expect(replies).toEqual(reference[0]);
    const types = events.map((e) => e.type);
    expect(types).toContain('token');
    expect(types.filter((t) => t === 'tool-call')).toHaveLength(2);
    const steps = events.filter((e) => e.type === 'step').length;
    const checkpoints = events.filter((e) => e.type === 'checkpoint');
    expect(steps).toBeGreaterThanOrEqual(4);
    expect(checkpoints).toHaveLength(steps);
    expect(types.at(-1)).toBe('idle');
    // Each checkpoint is on the branch, in order, and the head is the last one.
    const history = await runtime.session.history();
    expect(history.slice(0, steps).map((h) => h.id).reverse()).toEqual(checkpoints.map((c) => (c as { id: string }).id));
    expect(runtime.head).toBe(history[0]!.id);
    // The generation is recorded with its token ids; tool calls and results too.
    const recorded = history.flatMap((h) => h.checkpoint.events);
    expect(recorded.some((e) => e.type === 'generation' && e.tokens.length > 0)).toBe(true);
    expect(recorded.filter((e) => e.type === 'tool-result')).toHaveLength(2);
    // So are the agent's replies, in order: the transcript shows what the agent said, not only what the model wrote.
    const said = [...history].reverse().flatMap((h) => h.checkpoint.events.flatMap((e) => (e.type === 'reply' ? [e.text] : [])));
    expect(said).toEqual(replies);
  });

  it('on a priced engine every checkpoint records what its step cost; on a free one, nothing', async () => {
    // The real engine, watched: each generation's billed tokens (every prompt token, cached or not, and the output).
    const billed: { prompt: number; output: number }[] = [];
    const metered = new Proxy(engine, {
      get(target, key) {
        if (key !== 'generate') {
          const value = Reflect.get(target, key, target) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        }
        return async function* (request: GenerateRequest) {
          for await (const event of target.generate(request)) {
            if (event.type === 'done') billed.push({ prompt: event.stats.promptTokens, output: event.stats.completionTokens });
            yield event;
          }
        };
      },
    });
    // USD per 1,000 tokens, so one prompt token costs 2,000 micro-dollars and one output token 5,000: exact integers.
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, metered, { price: { promptPer1k: 2, outputPer1k: 5 } }), { agent: f.ids.scribe, tools: [f.ids.tally] });
    for (const [i, text] of TURNS.slice(0, 2).entries()) await turn(runtime, text, i === 0);
    const history = (await runtime.session.history()).reverse();
    let next = 0;
    for (const [i, { checkpoint }] of history.entries()) {
      if (i === 0) continue;
      const generations = checkpoint.events.filter((e) => e.type === 'generation').length;
      const expected = billed.slice(next, next + generations).reduce((n, b) => n + 2000 * b.prompt + 5000 * b.output, 0);
      next += generations;
      expect(checkpoint.counters.costMicros - history[i - 1]!.checkpoint.counters.costMicros).toBe(expected);
    }
    expect(next).toBe(billed.length);
    expect(billed.every((b) => b.prompt > 0 && b.output > 0)).toBe(true);
    expect(history.at(-1)!.checkpoint.counters.costMicros).toBeGreaterThan(0);

    const free = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(free, TURNS[0]!, true);
    expect((await free.session.checkpoint(free.head)).counters.costMicros).toBe(0);
  });

  it('a session restored in another process continues exactly like the uninterrupted run', async () => {
    const storeDir = path.join(scratch, 'store');
    const store = await openFsStore(storeDir);
    const runtime = await AgentRuntime.create(store, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const n = 3;
    expect(await turns(runtime, TURNS.slice(0, n), 0)).toEqual(reference.slice(0, n).flat());
    const child = path.join(import.meta.dirname, '..', '..', 'support', 'runtime-agent-child.ts');
    const run = promisify(execFile)(process.execPath, ['--import', 'tsx', child], { maxBuffer: 16 << 20 });
    run.child.stdin!.end(JSON.stringify({ storeDir, sessionId: runtime.session.id, modelPath, turns: TURNS.slice(n), from: n }));
    const out = JSON.parse((await run).stdout) as { pid: number; replies: string[] };
    expect(out.pid).not.toBe(process.pid);
    expect(out.replies).toEqual(reference.slice(n).flat());
  }, BUILD_TIMEOUT);

  it('without its checkpoint, a fresh agent does not continue the same way (the test above can fail)', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    expect(await turns(runtime, TURNS.slice(3), 0)).not.toEqual(reference.slice(3).flat());
  });

  it('fork: two branches from one checkpoint evolve independently; rollback restores tool state exactly', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'hello world', true);
    const forkPoint = runtime.head;
    const list = async () => (await turn(runtime, '/call tally {"op":"list"}')).replies[0];
    const tallyAt = async (at: string) => readImageAt(runtime.session, at, 'tool.tally', (await instantiate(await loader(f)(f.ids.tally), {})).initial);

    // The page does branch work on the store through its own Session; the runtime follows with reload().
    const page = async (op: (s: Session) => Promise<unknown>) => {
      await op(await Session.open(runtime.session.store, runtime.session.id));
      expect(await runtime.reload()).toBe(true);
    };
    await page(async (s) => (await s.fork(runtime.head, 'b'), s.switchBranch('b')));
    expect(await runtime.reload()).toBe(false);
    await turn(runtime, 'tell me a story');
    await turn(runtime, 'the model');
    expect(await list()).toBe('tally ok: ["1:turn 1","2:turn 2","3:turn 3"]');

    await page((s) => s.switchBranch('main'));
    expect(await list()).toBe('tally ok: ["1:turn 1"]');
    await turn(runtime, 'once upon a time');
    expect(await list()).toBe('tally ok: ["1:turn 1","2:turn 2"]');
    await page((s) => s.switchBranch('b'));
    expect(await list()).toBe('tally ok: ["1:turn 1","2:turn 2","3:turn 3"]');

    // Rollback to the fork point: the tool's memory image is exactly the one checkpointed there.
    await page((s) => s.rollback(forkPoint));
    const atFork = await tallyAt(forkPoint);
    const slot = runtime.tools.find((t) => t.name === 'tool.tally')!;
    const liveKey = await slot.capture('key', 'probe', 0);
    const { decodeChain } = await import('../../../src/core/runtime/state-codec.ts');
    const live = decodeChain([liveKey!], (await instantiate(await loader(f)(f.ids.tally), {})).initial);
    expect(live.globals).toEqual(atFork.globals);
    expect(live.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((a, b) => a - b)])).toEqual(
      atFork.memories.map((m) => [m.key, m.byteLength, [...m.pages.keys()].sort((a, b) => a - b)]),
    );
    for (const [m, memory] of atFork.memories.entries()) for (const [i, page] of memory.pages) expect(Buffer.compare(live.memories[m]!.pages.get(i)!, page)).toBe(0);
    expect(await list()).toBe('tally ok: ["1:turn 1"]');
  });

  it('malformed or failing tool calls go back to the agent as error observations', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const say = async (text: string) => (await turn(runtime, text, text === 'start')).replies;
    await say('start');
    expect((await say('/call tally {not json'))[0]).toMatch(/^tally error: The arguments for "tally" are not valid JSON/);
    expect((await say('/call tally {"op":"zap"}'))[0]).toMatch(/^tally error: .*arguments\.op: Instance does not match any of \["add","list","get"\]/s);
    expect((await say('/call tally {"op":"add","extra":1}'))[0]).toMatch(/arguments: Property "extra" does not match additional properties schema/);
    expect((await say('/call tally {"op":"add"}'))[0]).toBe('tally error: "add" needs a "title".');
    expect((await say('/call nope {}'))[0]).toMatch(/^nope error: There is no tool "nope"\. Available tools: tally\.$/);
    // The session is fine afterwards.
    expect((await say('/call tally {"op":"list"}'))[0]).toBe('tally ok: ["1:turn 1"]');
  });

  it('cancellation pauses after the current step; resume continues', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    const controller = new AbortController();
    const events = [];
    for await (const event of runtime.run({ type: 'start', task: 'hello world' }, controller.signal)) {
      events.push(event);
      if (event.type === 'checkpoint') controller.abort();
    }
    expect(events.at(-1)).toEqual({ type: 'paused', reason: 'cancelled' });
    expect(runtime.loopState.status).toBe('running');
    const rest = [];
    for await (const event of runtime.run({ type: 'resume' })) if (event.type === 'reply') rest.push(event.text);
    expect(runtime.loopState.status).toBe('idle');
    expect(rest).toHaveLength(1);
  });

  it('a message given to a run stopped before it began is still checkpointed, its reply cut at once', async () => {
    const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, TURNS[0]!, true);
    const head = await runtime.session.head();
    const events = [];
    for await (const event of runtime.run({ type: 'user', text: 'stopped before it began' }, AbortSignal.abort())) events.push(event);
    expect(events.at(-1)).toEqual({ type: 'paused', reason: 'cancelled' });
    expect(events.filter((e) => e.type === 'checkpoint')).toHaveLength(1);
    expect(events.some((e) => e.type === 'token')).toBe(false);
    expect(await runtime.session.head()).not.toBe(head);
    // Resumed, the cut reply goes on and the message is answered.
    const rest = [];
    for await (const event of runtime.run({ type: 'resume' })) if (event.type === 'reply') rest.push(event.text);
    expect(rest.length).toBeGreaterThan(0);
    expect(runtime.loopState.status).toBe('idle');
  });
});
