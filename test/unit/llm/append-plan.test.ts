/**
 * web-llm's prompt accounting (its generation cannot run on the build machines: no GPU, no MLC model libraries):
 * a step whose prompt extends what the sequence holds feeds only its new tokens; anything else starts over. And
 * web-llm's tokenizer id, which lets a session move between it and the GGUF engines by ids where their
 * vocabularies are the same.
 */
import { describe, expect, it } from 'vitest';
import { appendPlan } from '../../../src/core/llm/append-plan.ts';
import { webLlmTokenizerId } from '../../../src/browser/llm/webllm-engine.ts';

describe('appendPlan', () => {
  it('feeds only what a prompt adds to the cached sequence', () => {
    // Step 2 of a session: its prompt is step 1's prompt, the reply, and the next user turn.
    expect(appendPlan([1, 5, 6, 7, 40, 41], [1, 5, 6, 7, 40, 41, 9, 10, 11])).toEqual({ keep: 6, feed: [9, 10, 11] });
    expect(appendPlan([1, 5], [1, 5, 6])).toEqual({ keep: 2, feed: [6] });
  });

  it('starts over where the cache is not a proper prefix of the prompt', () => {
    expect(appendPlan([], [1, 2, 3])).toEqual({ keep: 0, feed: [1, 2, 3] });
    // A rollback or another branch: the prompt parts from the cache.
    expect(appendPlan([1, 5, 6, 7], [1, 5, 8, 9, 10])).toEqual({ keep: 0, feed: [1, 5, 8, 9, 10] });
    // The same prompt again: its last token must be fed for its logits; web-llm cannot cut its cache.
    expect(appendPlan([1, 5, 6], [1, 5, 6])).toEqual({ keep: 0, feed: [1, 5, 6] });
    // A shorter prompt.
    expect(appendPlan([1, 5, 6], [1, 5])).toEqual({ keep: 0, feed: [1, 5] });
  });
});

describe('webLlmTokenizerId', () => {
  const gguf = { tokenizerId: 'tok1-abc', tokens: ['<unk>', '<s>', '</s>', '▁the', '▁cat'] };

  it('is the GGUF’s when web-llm’s token table is the same, token for token', () => {
    expect(webLlmTokenizerId('Llama-x', ['<unk>', '<s>', '</s>', '▁the', '▁cat'], gguf)).toBe('tok1-abc');
  });

  it('is web-llm’s own when any token, the order or the size differs, or there is no GGUF to compare', () => {
    expect(webLlmTokenizerId('Llama-x', ['<unk>', '<s>', '</s>', '▁cat', '▁the'], gguf)).toBe('web-llm:Llama-x');
    expect(webLlmTokenizerId('Llama-x', ['<unk>', '<s>', '</s>', '▁the'], gguf)).toBe('web-llm:Llama-x');
    expect(webLlmTokenizerId('Llama-x', ['<unk>', '<s>', '</s>', '▁the', '▁cat', '<pad>'], gguf)).toBe('web-llm:Llama-x');
    expect(webLlmTokenizerId('Llama-x', gguf.tokens, undefined)).toBe('web-llm:Llama-x');
  });
});
