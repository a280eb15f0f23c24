/**
 * Edge drafts, cloud verifies, with the device's real engine: wllama in Chromium drafts, the relay's node-llama-cpp
 * verifies over /api/v2/verify. The output equals the relay model's greedy output (node-llama-cpp alone) for a draft
 * that agrees often (the same weights in 4 bits) and one that agrees rarely (other weights). wllama can be the
 * verifying side too (a device verifying another's drafts): its picks are node-llama-cpp's.
 */
import { commands } from 'vitest/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { DraftLength, engineVerifier, speculativeDecode } from '../../src/core/llm/index.ts';
import { VerifyConnection, type VerifySocket } from '../../src/core/protocol/index.ts';
import type { CpuEngine } from '../../src/browser/llm/cpu-engine.ts';
import { createCpuEngine } from '../../src/browser/llm/cpu-open.ts';
import type { VerifyRelay } from '../support/verify-relay-commands.ts';

const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea'];
const MAX = 32;

let relay: VerifyRelay;
let connection: VerifyConnection;

beforeAll(async () => {
  relay = await commands.startVerifyRelay({}, PROMPTS, MAX);
  connection = await VerifyConnection.connect(relay.url, (url) => new WebSocket(url) as VerifySocket);
});
afterAll(async () => {
  connection?.close();
  await commands.stopVerifyRelay();
});

describe('wllama drafts in Chromium, the relay verifies', () => {
  for (const [agreement, params] of [['often', { type: 'q4_0' }], ['rarely', { seed: 2 }]] as const) {
    it(`gives the relay model's greedy tokens with a draft that agrees ${agreement}`, async () => {
      const draft: CpuEngine = await createCpuEngine({ model: new Blob([generateTinyModel(params)]), contextSize: 512 });
      try {
        let drafted = 0;
        let accepted = 0;
        for (const run of relay.runs) {
          const verifier = await connection.session(run.promptTokens, { model: relay.model });
          const result = await speculativeDecode({ draft, verifier, prompt: run.promptTokens, maxTokens: MAX, draftLength: new DraftLength({ fixed: 4 }) });
          verifier.close();
          expect(result.tokens).toEqual(run.tokens);
          drafted += result.drafted;
          accepted += result.accepted;
        }
        if (agreement === 'often') expect(accepted / drafted).toBeGreaterThan(0.35);
        else expect(accepted / drafted).toBeLessThan(0.05);
      } finally {
        await draft.dispose();
      }
    });
  }
});

describe('wllama verifies', () => {
  it('gives the greedy pick at every position of a draft, and decodes like the target alone', async () => {
    const [target, draft] = await Promise.all([
      createCpuEngine({ model: new Blob([generateTinyModel()]), contextSize: 512 }),
      createCpuEngine({ model: new Blob([generateTinyModel({ type: 'q4_0' })]), contextSize: 512 }),
    ]);
    try {
      const [run] = relay.runs;
      const expected = run!.tokens;
      const right = await target.verify({ context: run!.promptTokens, draft: expected.slice(0, 5) });
      expect(right.argmax).toEqual(expected.slice(0, 6));
      // A wrong id at position 2: the picks up to it are the target's, and the KV before it is reused next round.
      const wrong = expected.slice(0, 4).map((t, i) => (i === 2 ? (t === 300 ? 301 : 300) : t));
      const verdict = await target.verify({ context: [...run!.promptTokens, ...expected.slice(0, 1)], draft: wrong.slice(1) });
      expect(verdict.argmax.slice(0, 2)).toEqual(expected.slice(1, 3));
      expect(verdict.cachedTokens).toBe(run!.promptTokens.length);
      for (const { promptTokens, tokens } of relay.runs) {
        const result = await speculativeDecode({ draft, verifier: engineVerifier(target, promptTokens), prompt: promptTokens, maxTokens: MAX });
        expect(result.tokens).toEqual(tokens);
      }
    } finally {
      await Promise.all([target.dispose(), draft.dispose()]);
    }
  });
});
