/**
 * How an engine whose cached sequence can only grow (web-llm keeps its KV between calls but cannot cut it) brings
 * it to `prompt`: when the cache holds a proper prefix of the prompt, only the rest is fed; otherwise it starts over.
 * A prompt equal to the cache starts over too: the last token must be fed again for its logits.
 */
export interface AppendPlan {
  /** Cached tokens kept (0: reset the sequence first). */
  readonly keep: number;
  /** Tokens to feed after them. */
  readonly feed: readonly number[];
}

export function appendPlan(cached: readonly number[], prompt: readonly number[]): AppendPlan {
  const grows = cached.length > 0 && cached.length < prompt.length && cached.every((id, i) => id === prompt[i]);
  return grows ? { keep: cached.length, feed: prompt.slice(cached.length) } : { keep: 0, feed: [...prompt] };
}
