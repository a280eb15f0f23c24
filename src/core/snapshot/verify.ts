import type { Store } from '../store/index.ts';
import { collectClosure } from './closure.ts';

/**
 * Checks that every session ref in `store` reaches a complete, valid graph (every object present, hashing to its
 * id, decoding as its kind). Throws the first problem as a typed error; returns the number of objects checked.
 */
export async function verifySessions(store: Store): Promise<number> {
  const refs = (await store.listRefs('sessions/')).filter((r) => /^sessions\/[0-9a-f]{32}\/(head|branches\/[^/]+)$/.test(r.name));
  return (await collectClosure(store, refs)).length;
}
