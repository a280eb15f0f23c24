/**
 * Token prefixes named by a chained hash of their ids at every block boundary: a node says which prefixes its KV
 * cache holds by these keys, and a prompt's keys find, in one pass over its blocks, how much of it a node already
 * holds. Hashes can collide and a cache moves on, so a match is an estimate's input and a candidate to check
 * against the holder's real tokens, never a promise.
 */
export const PREFIX_BLOCK = 64;

/** One key per whole block: two FNV-1a hashes (32-bit, different bases) chained over every token so far. */
export function prefixBlockKeys(tokens: readonly number[]): string[] {
  const keys: string[] = [];
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i + PREFIX_BLOCK <= tokens.length; i += PREFIX_BLOCK) {
    for (let j = i; j < i + PREFIX_BLOCK; j++) {
      const t = tokens[j]!;
      a = Math.imul(a ^ t, 0x01000193) >>> 0;
      b = Math.imul(b ^ t ^ (t >>> 16), 0x5bd1e995) >>> 0;
      b ^= b >>> 13;
    }
    keys.push(`${a.toString(36)}.${b.toString(36)}`);
  }
  return keys;
}

/** Leading tokens of the prompt whose keys are `promptKeys` that a holder of `held` keys has: whole blocks only. */
export function heldPrefixTokens(promptKeys: readonly string[], held: ReadonlySet<string>): number {
  let blocks = 0;
  while (blocks < promptKeys.length && held.has(promptKeys[blocks]!)) blocks++;
  return blocks * PREFIX_BLOCK;
}
