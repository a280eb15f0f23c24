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

/** The most keyed prefixes a node reports on the wire (64 tokens each: 64K tokens of held prefixes). */
export const MAX_WIRE_PREFIXES = 1024;

/**
 * Prefix keys as a node reports them and a session's owner matches them: HMAC-SHA256 under the session's prefix key
 * (SessionKeys.prefixes), cut to 64 bits and written like a prefix key. Raw keys are a content fingerprint (anyone
 * could confirm a guessed system prompt in the worker list); keyed ones are opaque without the session key, and
 * differ between sessions, so nobody can link two sessions' prompts either.
 */
export async function keyPrefixes(key: CryptoKey, keys: readonly string[]): Promise<string[]> {
  const encoder = new TextEncoder();
  return Promise.all(keys.map(async (k) => {
    const mac = new DataView(await globalThis.crypto.subtle.sign('HMAC', key, encoder.encode(k)));
    return `${mac.getUint32(0).toString(36)}.${mac.getUint32(4).toString(36)}`;
  }));
}
