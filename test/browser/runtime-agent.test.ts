/**
 * Transparent checkpointing across platforms with the whole runtime: an agent session (the `scribe` agent, the
 * `tally` tool, a real engine — node-llama-cpp in Node, wllama in the Chromium agent worker, same tiny model)
 * run for a few turns in Node continues in the Chromium worker, and the reverse, with exactly the replies of a
 * run that never moved. And the agent worker on web-llm: in this Chromium (SwiftShader WebGPU, no model to fetch)
 * web-llm cannot load, so the worker says why and runs the session on its wllama fallback — the same model; likewise
 * the session's GGUF on llama.cpp's WebGPU backend, which SwiftShader (no shader-f16) cannot take.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands } from 'vitest/browser';
import { AgentClient } from '../../src/browser/agent-client.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { openIdbStore } from '../../src/browser/idb-store.ts';
import type { RunnerEvent } from '../../src/core/host/index.ts';
import { exportSession } from '../../src/core/snapshot/index.ts';
import type { ComponentFiles } from '../../src/core/runtime/tool-worker.ts';
import type { AgentFixturesJson } from '../support/runtime-commands.ts';
import { TURNS } from '../support/runtime-turns.ts';
import { fromBase64, toBase64 } from '../support/state-image-json.ts';

const N = 3;
let fixtures: AgentFixturesJson;
let components: Record<string, ComponentFiles>;
let model: Blob;
/** The replies of an uninterrupted run of every turn, in Node. */
let reference: string[];
const clients: AgentClient[] = [];

beforeAll(async () => {
  fixtures = await commands.agentComponentFiles();
  components = Object.fromEntries(Object.entries(fixtures.files).map(([id, files]) => [id, Object.fromEntries(Object.entries(files).map(([f, b]) => [f, fromBase64(b)]))]));
  model = new Blob([generateTinyModel({ ctx: 4096 }) as Uint8Array<ArrayBuffer>]);
  reference = (await commands.agentRunInNode(TURNS, 0)).replies;
  expect(reference.some((r) => /^turn \d: .+ \| notes: \d+ chars$/.test(r))).toBe(true);
}, 240_000);
afterAll(async () => {
  for (const client of clients) await client.terminate();
});

async function client(): Promise<{ agent: AgentClient; replies: string[]; events: RunnerEvent[] }> {
  const agent = new AgentClient();
  clients.push(agent);
  const replies: string[] = [];
  const events: RunnerEvent[] = [];
  await agent.subscribe((event: RunnerEvent) => {
    events.push(event);
    if (event.type === 'reply') replies.push(event.text);
    if (event.type === 'step-failed') replies.push(`step failed: ${event.error.code}`);
  });
  return { agent, replies, events };
}

async function play(agent: AgentClient, turns: readonly string[], from: number): Promise<void> {
  for (const [i, text] of turns.entries()) await agent.send(from + i === 0 ? { type: 'start', task: text } : { type: 'user', text });
}

describe('an agent session moves between Node and a Chromium agent worker', () => {
  it('run in Node, restored in the Chromium worker: the same replies as the uninterrupted run', async () => {
    const inNode = await commands.agentRunInNode(TURNS.slice(0, N), 0);
    expect(inNode.replies).toEqual(reference.slice(0, inNode.replies.length));
    const { agent, replies } = await client();
    const status = await agent.start({ components, engine: { kind: 'wllama', model, contextSize: 4096 }, file: fromBase64(inNode.file) });
    expect(status.state.steps).toBeGreaterThan(N);
    await play(agent, TURNS.slice(N), N);
    expect(replies).toEqual(reference.slice(inNode.replies.length));
  });

  it('run in the Chromium worker, restored in Node: the same replies as the uninterrupted run', async () => {
    const { agent, replies } = await client();
    // The worker writes into an IndexedDB store the page opens too, as in the app; the page exports from it.
    const storeName = `runtime-agent-${crypto.randomUUID()}`;
    const { sessionId } = await agent.start({ components, agent: fixtures.ids.scribe, tools: [fixtures.ids.tally], engine: { kind: 'wllama', model, contextSize: 4096 }, store: storeName });
    await play(agent, TURNS.slice(0, N), 0);
    expect(replies).toEqual(reference.slice(0, replies.length));
    const file = await exportSession(openIdbStore({ name: storeName }), sessionId);
    const inNode = await commands.agentRunInNode(TURNS.slice(N), N, toBase64(file));
    expect(inNode.pid).toBeGreaterThan(0);
    expect([...replies, ...inNode.replies]).toEqual(reference);
  });

  it('on web-llm: a model the GPU cannot load hands over to the wllama fallback, says why, and runs the same session', async () => {
    const { agent, replies, events } = await client();
    const unreachable = 'http://127.0.0.1:9/ferry-missing-model';
    const engine = { kind: 'web-llm', modelId: 'ferry-missing', modelList: [{ model: unreachable, model_id: 'ferry-missing', model_lib: `${unreachable}/lib.wasm` }], fallback: { kind: 'wllama', model, contextSize: 4096 } } as const;
    await agent.start({ components, agent: fixtures.ids.scribe, tools: [fixtures.ids.tally], engine });
    const switches = events.flatMap((e) => (e.type === 'engine-switch' ? [e.change] : []));
    expect(switches).toEqual([{ from: 'web-llm', to: 'wllama', code: 'llm/no-chat-template', during: 'load', message: expect.stringMatching(/^The web-llm model ferry-missing has no chat template .*tokenizer_config\.json could not be fetched.* Running on wllama \(.*\) instead\.$/) }]);
    await play(agent, TURNS.slice(0, N), 0);
    expect(replies.length).toBeGreaterThan(0);
    expect(replies).toEqual(reference.slice(0, replies.length));
  });

  it('on the GGUF through WebGPU: a GPU that takes no layer hands over to llama.cpp on the CPU, says why, and runs the same session', async () => {
    const { agent, replies, events } = await client();
    await agent.start({ components, agent: fixtures.ids.scribe, tools: [fixtures.ids.tally], engine: { kind: 'wllama-webgpu', fallback: { kind: 'wllama', model, contextSize: 4096 } } });
    const switches = events.flatMap((e) => (e.type === 'engine-switch' ? [e.change] : []));
    expect(switches).toEqual([{ from: 'wllama-webgpu', to: 'wllama', code: 'llm/webgpu-unsupported', during: 'load', message: expect.stringMatching(/took no layer of the model \(0 of 3; .*shader-f16.* Running on wllama \(.*\) instead\.$/) }]);
    await play(agent, TURNS.slice(0, N), 0);
    expect(replies.length).toBeGreaterThan(0);
    expect(replies).toEqual(reference.slice(0, replies.length));
  });
});
