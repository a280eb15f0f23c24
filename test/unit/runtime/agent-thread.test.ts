/**
 * The agent runtime hosted in Node worker threads (server/runtime/agent-host.ts), the cloud worker's shape: a
 * session run in one thread, exported, continues in a fresh thread exactly like an uninterrupted in-process run;
 * errors keep their codes across the thread boundary.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentThread } from '../../../server/runtime/agent-host.ts';
import { componentFiles } from '../../../server/runtime/node-tools.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import type { ComponentFiles } from '../../../src/core/runtime/tool-worker.ts';
import type { RunnerEvent } from '../../../src/core/host/index.ts';
import { AgentRuntime } from '../../../src/core/runtime/runtime.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { fixtures, setupFor, tinyEngine, tinyModelFile, turns, TURNS, type Fixtures } from '../../support/runtime-agent.ts';

const BUILD_TIMEOUT = 240_000;
const N = 3;
let f: Fixtures;
let modelPath: string;
let engine: Engine;
let components: Record<string, ComponentFiles>;
let reference: string[];
const threads: AgentThread[] = [];

beforeAll(async () => {
  f = await fixtures();
  modelPath = await tinyModelFile();
  engine = await tinyEngine(modelPath);
  components = { [f.ids.scribe]: await componentFiles(f.dirs.scribe), [f.ids.tally]: await componentFiles(f.dirs.tally) };
  const runtime = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
  reference = await turns(runtime, TURNS, 0);
}, BUILD_TIMEOUT);
afterAll(async () => {
  for (const thread of threads) await thread.terminate();
  await engine?.dispose();
});

async function thread(): Promise<{ agent: AgentThread; replies: string[] }> {
  const agent = new AgentThread();
  threads.push(agent);
  const replies: string[] = [];
  await agent.subscribe((event: RunnerEvent) => {
    if (event.type === 'reply') replies.push(event.text);
  });
  return { agent, replies };
}

const engineSpec = () => ({ kind: 'node-llama-cpp' as const, modelPath, gpu: false as const, threads: 1, slots: 1, contextSize: 4096 });

describe('agent runtime in worker threads', () => {
  it('a session left by one thread in their shared store continues in another exactly like an uninterrupted run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-agent-thread-'));
    const first = await thread();
    const { sessionId } = await first.agent.start({ components, agent: f.ids.scribe, tools: [f.ids.tally], engine: engineSpec(), sampling: { maxTokens: 8, temperature: 0, seed: 0 }, store: dir });
    for (const [i, text] of TURNS.slice(0, N).entries()) await first.agent.send(i === 0 ? { type: 'start', task: text } : { type: 'user', text });
    expect(first.replies).toEqual(reference.slice(0, first.replies.length));
    await first.agent.terminate();

    const second = await thread();
    const status = await second.agent.start({ components, engine: engineSpec(), sampling: { maxTokens: 8, temperature: 0, seed: 0 }, store: dir, sessionId });
    expect(status.state.status).toBe('idle');
    for (const text of TURNS.slice(N)) await second.agent.send({ type: 'user', text });
    expect([...first.replies, ...second.replies]).toEqual(reference);
    await rm(dir, { recursive: true, force: true });
  }, BUILD_TIMEOUT);

  it('errors cross the thread boundary with their codes', async () => {
    const { agent } = await thread();
    await expect(agent.send({ type: 'user', text: 'hi' })).rejects.toMatchObject({ name: 'FerryError', code: 'runtime/not-started' });
    await expect(agent.start({ components, engine: engineSpec() })).rejects.toMatchObject({ code: 'runtime/bad-input' });
    await expect(agent.start({ components: {}, agent: f.ids.scribe, engine: engineSpec() })).rejects.toMatchObject({ code: 'runtime/missing-component' });
  }, BUILD_TIMEOUT);
});
