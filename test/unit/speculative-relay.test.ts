/**
 * Edge drafts, cloud verifies, over the relay's wire: a drafting engine (the device's, here a second node-llama-cpp
 * engine on a generated model) sends drafted ids, the relay's own engine answers accepted count + next id. The output
 * equals the relay model's greedy output for a draft that agrees often and one that agrees rarely; eight sessions
 * verified together get the same tokens as each alone; bad messages get typed errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import WebSocket from 'ws';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { DraftLength, engineVerifier, generateAll, speculativeDecode } from '../../src/core/llm/index.ts';
import { VerifyConnection, verifyPath, type VerifySocket } from '../../src/core/protocol/index.ts';
import type { NodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';
import { VerifyBatcher } from '../../server/llm/verify-batch.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { cpuEngine } from './llm/fixtures.ts';
import { waitFor } from '../support/wait.ts';

const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea', 'Once upon a time', 'hi', 'What is the weather', 'Tell me a joke', 'Plan a trip to the mountains'];
const MAX = 32;

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
/** The relay's model, loaded here too: what cloud-only greedy decoding gives. */
let reference: NodeLlamaEngine;
let often: NodeLlamaEngine;
let rarely: NodeLlamaEngine;
let connection: VerifyConnection;
const expected = new Map<string, readonly number[]>();

const openSocket = (url: string): VerifySocket => new WebSocket(url) as unknown as VerifySocket;
const wsUrl = () => `${relay.url.replace(/^http/, 'ws')}${verifyPath}`;

beforeAll(async () => {
  dirs = await makeTempDirs();
  const file = (name: string) => path.join(dirs.root, name);
  await Promise.all([
    writeFile(file('target.gguf'), generateTinyModel()),
    writeFile(file('often.gguf'), generateTinyModel({ type: 'q4_0' })),
    writeFile(file('rarely.gguf'), generateTinyModel({ seed: 2 })),
  ]);
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: file('target.gguf'), embeddedWorker: false });
  [reference, often, rarely] = await Promise.all([cpuEngine(file('target.gguf'), { slots: 8 }), cpuEngine(file('often.gguf'), { slots: 8 }), cpuEngine(file('rarely.gguf'), { slots: 1 })]);
  for (const text of PROMPTS) {
    const prompt = await promptOf(text);
    expected.set(text, (await generateAll(reference, { prompt: { tokens: prompt }, maxTokens: MAX, slot: 'alone' })).tokens);
  }
  connection = await VerifyConnection.connect(wsUrl(), openSocket);
}, 120_000);

afterAll(async () => {
  connection?.close();
  await Promise.all([reference?.dispose(), often?.dispose(), rarely?.dispose()]);
  await relay?.close();
  await dirs?.cleanup();
});

async function promptOf(text: string): Promise<number[]> {
  return [1, ...(await reference.tokenize(text))];
}

describe('edge drafts, relay verifies', () => {
  for (const [agreement, draft] of [['often', () => often], ['rarely', () => rarely]] as const) {
    it(`gives the relay model's greedy tokens with a draft that agrees ${agreement}`, async () => {
      let drafted = 0;
      let accepted = 0;
      let rounds = 0;
      for (const text of PROMPTS.slice(0, 4)) {
        const prompt = await promptOf(text);
        const verifier = await connection.session(prompt, { model: reference.info.model });
        const result = await speculativeDecode({ draft: draft(), verifier, prompt, maxTokens: MAX, slot: 'device', draftLength: new DraftLength({ fixed: 4 }) });
        verifier.close();
        expect(result.tokens).toEqual(expected.get(text));
        drafted += result.drafted;
        accepted += result.accepted;
        rounds += result.rounds;
      }
      if (agreement === 'often') {
        expect(accepted / drafted).toBeGreaterThan(0.35);
        expect(rounds).toBeLessThan(4 * MAX * 0.6);
      } else {
        expect(accepted / drafted).toBeLessThan(0.05);
      }
    });
  }

  it('eight sessions verified together get the same tokens as each alone', async () => {
    const results = await Promise.all(PROMPTS.map(async (text, i) => {
      const prompt = await promptOf(text);
      const verifier = await connection.session(prompt);
      const result = await speculativeDecode({ draft: often, verifier, prompt, maxTokens: MAX, slot: `device-${i}` });
      verifier.close();
      return result.tokens;
    }));
    expect(results).toEqual(PROMPTS.map((text) => expected.get(text)));
  });

  it('the batcher starts rounds that arrive together as one pass, with the picks of each alone', async () => {
    const batcher = new VerifyBatcher(reference, { windowMs: 10_000, maxBatch: PROMPTS.length });
    const prompts = await Promise.all(PROMPTS.map(promptOf));
    // Each session drafts its true continuation with one wrong id in the middle.
    const drafts = PROMPTS.map((text, i) => expected.get(text)!.slice(0, 6).map((t, j) => (j === 1 + (i % 4) ? (t === 300 ? 301 : 300) : t)));
    const together = await Promise.all(prompts.map((context, i) => batcher.verify({ context, draft: drafts[i]!, slot: `batch-${i}` })));
    expect(batcher.stats).toEqual({ passes: 1, rounds: PROMPTS.length });
    for (const [i, context] of prompts.entries()) {
      const alone = await reference.verify({ context, draft: drafts[i]!, slot: 'alone' });
      expect(together[i]!.argmax).toEqual(alone.argmax);
      const verdict = await engineVerifier(reference, context, 'alone').verify(drafts[i]!);
      expect(verdict).toEqual({ accepted: 1 + (i % 4), next: expected.get(PROMPTS[i]!)![1 + (i % 4)] });
    }
  });

  it('the batcher starts what arrived in one turn of the event loop at its end, without waiting for later rounds', async () => {
    const batcher = new VerifyBatcher(reference);
    const prompts = await Promise.all(PROMPTS.slice(0, 3).map(promptOf));
    const draft = (i: number) => expected.get(PROMPTS[i]!)!.slice(0, 3);
    const first = [0, 1].map((i) => batcher.verify({ context: prompts[i]!, draft: draft(i), slot: `turn-${i}` }));
    await new Promise((resolve) => setImmediate(resolve));
    const later = batcher.verify({ context: prompts[2]!, draft: draft(2), slot: 'turn-2' });
    const results = await Promise.all([...first, later]);
    expect(batcher.stats).toEqual({ passes: 2, rounds: 3 });
    results.forEach((r, i) => expect(r.argmax).toEqual([...draft(i), expected.get(PROMPTS[i]!)![3]]));
  });

  it('answers a round for a session never opened, or out of order, with a typed error on that session', async () => {
    const socket = new WebSocket(wsUrl());
    const messages: Array<{ type: string; session?: string; error?: { code: string } }> = [];
    socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'verify', session: 'nope', round: 1, draft: [5] }));
    socket.send(JSON.stringify({ type: 'open', session: 'a', prompt: [1, 300] }));
    await waitFor('two answers', () => messages.length >= 2);
    socket.send(JSON.stringify({ type: 'verify', session: 'a', round: 2, draft: [] }));
    await waitFor('a third answer', () => messages.length >= 3);
    expect(messages).toEqual([
      expect.objectContaining({ type: 'error', session: 'nope', error: expect.objectContaining({ code: 'verify/unknown-session' }) }),
      expect.objectContaining({ type: 'opened', session: 'a', model: reference.info.model }),
      expect.objectContaining({ type: 'error', session: 'a', error: expect.objectContaining({ code: 'verify/out-of-order' }) }),
    ]);
    // A malformed message is the socket's fault: a typed error, then the socket closes.
    const closed = new Promise<number>((resolve) => socket.once('close', resolve));
    socket.send(JSON.stringify({ type: 'verify', session: 'a', round: 1, draft: new Array(65).fill(3) }));
    expect(await closed).toBe(1008);
    expect(messages.at(-1)).toEqual(expect.objectContaining({ type: 'error', error: expect.objectContaining({ code: 'verify/bad-message' }) }));
    expect(messages.at(-1)!.session).toBeUndefined();
  });

  it('refuses drafts made for another model', async () => {
    await expect(connection.session([1, 300], { model: 'f'.repeat(64) })).rejects.toMatchObject({ code: 'api/unknown-model' });
  });
});
