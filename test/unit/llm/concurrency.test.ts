import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll, type GenerateRequest } from '../../../src/core/llm/index.ts';
import type { NodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';
import { GREEDY_PROMPTS } from '../../support/prompts.ts';
import { cpuEngine, modelDir } from './fixtures.ts';

let models: Awaited<ReturnType<typeof modelDir>>;
let modelPath: string;
beforeAll(async () => {
  models = await modelDir();
  modelPath = await models.model('tiny.gguf');
});
afterAll(async () => {
  await models?.cleanup();
});

const PROMPTS = [...GREEDY_PROMPTS, 'the agent and the cloud device', 'what is this story'];

/** Solo runs: one at a time, on an engine with a single slot. */
async function soloRuns(requests: readonly GenerateRequest[]): Promise<number[][]> {
  const solo = await cpuEngine(modelPath, { slots: 1 });
  try {
    const out: number[][] = [];
    for (const request of requests) out.push([...(await generateAll(solo, request)).tokens]);
    return out;
  } finally {
    await solo.dispose();
  }
}

/** Runs every request at once; records which request each streamed token belonged to, in arrival order. */
async function together(engine: NodeLlamaEngine, requests: readonly GenerateRequest[]): Promise<{ tokens: number[][]; order: number[] }> {
  const order: number[] = [];
  const results = await Promise.all(requests.map((request, i) => generateAll(engine, request, () => order.push(i))));
  return { tokens: results.map((r) => [...r.tokens]), order };
}

/** True when some request streamed a token while another was between its first and last token. */
function interleaved(order: readonly number[]): boolean {
  return order.some((who, at) => at > 0 && who !== order[at - 1] && order.slice(at + 1).includes(order[at - 1]!));
}

describe('several sessions on one node-llama-cpp model', () => {
  it('generates for 4 sessions at once, each identical to its solo run', async () => {
    const requests = PROMPTS.slice(0, 4).map((text, i) => ({ prompt: { text }, maxTokens: 40 + 8 * i, slot: `session-${i}` }));
    const solo = await soloRuns(requests);
    const engine = await cpuEngine(modelPath, { slots: 4 });
    try {
      const run = await together(engine, requests);
      expect(run.tokens).toEqual(solo);
      expect(interleaved(run.order)).toBe(true);
      // The second turn of every session, again at once, reuses each session's own cache.
      const second = requests.map((r, i) => ({ ...r, prompt: { text: `${r.prompt.text} ${i}` }, maxTokens: 16 }));
      expect((await together(engine, second)).tokens).toEqual(await soloRuns(second));
    } finally {
      await engine.dispose();
    }
  });

  it('queues sessions beyond its slots and still gives each its solo result', async () => {
    const requests = PROMPTS.map((text, i) => ({ prompt: { text }, maxTokens: 24, ...(i % 2 === 0 ? { slot: `q-${i}` } : {}) }));
    const solo = await soloRuns(requests);
    const engine = await cpuEngine(modelPath, { slots: 2 });
    try {
      expect((await together(engine, requests)).tokens).toEqual(solo);
    } finally {
      await engine.dispose();
    }
  });
});
