/**
 * Edge drafts, cloud verifies, with the device's real engine: wllama in Chromium drafts, the relay's node-llama-cpp
 * verifies over /api/v1/verify. The output equals the relay model's greedy output (node-llama-cpp alone) for a draft
 * that agrees often (the same weights in 4 bits) and one that agrees rarely (other weights).
 */
import { commands } from 'vitest/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { DraftLength, speculativeDecode } from '../../src/core/llm/index.ts';
import { VerifyConnection, type VerifySocket } from '../../src/core/protocol/index.ts';
import { createWllamaEngine, type WllamaEngine } from '../../src/browser/llm/wllama-engine.ts';
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
      const draft: WllamaEngine = await createWllamaEngine({ model: new Blob([generateTinyModel(params)]), contextSize: 512 });
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
