/**
 * Which holders (a context's sequences) cache which token prefixes, by a chained hash of the token ids at every
 * block boundary: a prompt finds who holds which of its whole-block prefixes in one pass over its blocks, whatever
 * the number of holders. Hashes can collide and a holder's cache moves on while it generates, so a hit is a
 * candidate to check against the holder's real tokens, never a promise.
 */
import { PREFIX_BLOCK, prefixBlockKeys as blockKeys } from '../../src/core/llm/prefix-keys.ts';

export { PREFIX_BLOCK };

export class PrefixIndex<T> {
  readonly #holders = new Map<string, Set<T>>();
  readonly #keys = new Map<T, string[]>();

  /** Records that `holder` now caches `tokens` (replacing what it held). */
  set(holder: T, tokens: readonly number[]): void {
    this.delete(holder);
    const keys = blockKeys(tokens);
    this.#keys.set(holder, keys);
    for (const key of keys) {
      let set = this.#holders.get(key);
      if (!set) this.#holders.set(key, (set = new Set()));
      set.add(holder);
    }
  }

  delete(holder: T): void {
    for (const key of this.#keys.get(holder) ?? []) {
      const set = this.#holders.get(key);
      set?.delete(holder);
      if (set?.size === 0) this.#holders.delete(key);
    }
    this.#keys.delete(holder);
  }

  /** Every prefix key some holder caches: what a node reports it holds (NodeProfile.prefixes). */
  keys(): string[] {
    return [...this.#holders.keys()];
  }

  /** The accepted holders of some whole-block prefix of `tokens`. */
  holders(tokens: readonly number[], accept: (holder: T) => boolean): Set<T> {
    const found = new Set<T>();
    for (const key of blockKeys(tokens)) {
      const holders = [...(this.#holders.get(key) ?? [])].filter(accept);
      if (holders.length === 0) break;
      for (const holder of holders) found.add(holder);
    }
    return found;
  }
}
