import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import { FerryError } from '../../src/core/errors.ts';
import { PREFIX_BLOCK, PrefixIndex } from './prefix-index.ts';

/**
 * The sequences of one llama.cpp context, lent out one generation at a time. A named slot (a session) keeps its
 * sequence and so its KV cache between turns; a request without a name takes the idle sequence whose cache
 * shares the longest prefix with its prompt. When every sequence is busy, requests wait in line.
 * The pool also knows which prefixes each sequence caches (by block hashes), so a request can find another
 * sequence — busy or not, anyone's — whose cache it may copy instead of prefilling the same prefix again.
 */
export interface Slot {
  readonly index: number;
  readonly sequence: LlamaContextSequence;
  owner: string | undefined;
  busy: boolean;
  lastUsed: number;
}

export class SlotPool {
  readonly #slots: Slot[];
  readonly #prefixes = new PrefixIndex<Slot>();
  #waiters: Array<() => void> = [];
  #clock = 0;
  #closed = false;

  constructor(sequences: readonly LlamaContextSequence[]) {
    this.#slots = sequences.map((sequence, index) => ({ index, sequence, owner: undefined, busy: false, lastUsed: 0 }));
  }

  get size(): number {
    return this.#slots.length;
  }

  /** The sequence a named slot holds now, if any. */
  find(name: string): Slot | undefined {
    return this.#slots.find((s) => s.owner === name);
  }

  /** Waits for a sequence for `name` (or any, when unnamed); undefined when `signal` aborts first. */
  async acquire(name: string | undefined, prompt: readonly number[], signal?: AbortSignal): Promise<Slot | undefined> {
    for (;;) {
      if (this.#closed) throw new FerryError('llm/disposed', 'The engine was disposed.');
      if (signal?.aborted) return undefined;
      const slot = this.#pick(name, prompt);
      if (slot) {
        slot.busy = true;
        slot.owner = name;
        slot.lastUsed = ++this.#clock;
        return slot;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal?.removeEventListener('abort', wake);
          this.#waiters = this.#waiters.filter((w) => w !== wake);
          resolve();
        };
        this.#waiters.push(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** Records that `slot` is about to cache `tokens` (its prompt, evaluated from now on). */
  holds(slot: Slot, tokens: readonly number[]): void {
    this.#prefixes.set(slot, tokens);
  }

  /**
   * Another slot whose cache shares a longer prefix with `prompt` than `slot`'s own by at least a block, and that
   * prefix's length in tokens (checked against its tokens now; it may be busy, its cache is only read).
   */
  holderOf(slot: Slot, prompt: readonly number[]): { slot: Slot; tokens: number } | undefined {
    const own = sharedPrefix(slot, prompt);
    let best: { slot: Slot; tokens: number } | undefined;
    for (const holder of this.#prefixes.holders(prompt, (s) => s !== slot)) {
      const tokens = sharedPrefix(holder, prompt);
      if (tokens >= own + PREFIX_BLOCK && tokens > (best?.tokens ?? 0)) best = { slot: holder, tokens };
    }
    return best;
  }

  release(slot: Slot): void {
    this.#prefixes.set(slot, slot.sequence.contextTokens);
    slot.busy = false;
    slot.lastUsed = ++this.#clock;
    for (const wake of [...this.#waiters]) wake();
  }

  /** Forgets a name (its cache stays usable for prefix reuse by anyone). */
  forget(name: string): void {
    const slot = this.find(name);
    if (slot) slot.owner = undefined;
  }

  close(): void {
    this.#closed = true;
    for (const wake of [...this.#waiters]) wake();
  }

  #pick(name: string | undefined, prompt: readonly number[]): Slot | undefined {
    if (name !== undefined) {
      const own = this.find(name);
      if (own) return own.busy ? undefined : own;
    }
    const idle = this.#slots.filter((s) => !s.busy);
    if (idle.length === 0) return undefined;
    // Prefer a free sequence with the longest shared prefix; evict another session's cache only when none is free.
    const free = idle.filter((s) => s.owner === undefined);
    if (free.length > 0) {
      return free.reduce((best, s) => (sharedPrefix(s, prompt) > sharedPrefix(best, prompt) ? s : best));
    }
    return idle.reduce((oldest, s) => (s.lastUsed < oldest.lastUsed ? s : oldest));
  }
}

function sharedPrefix(slot: Slot, prompt: readonly number[]): number {
  return slot.sequence.compareContextTokens(prompt as Token[]).firstDifferentIndex;
}
