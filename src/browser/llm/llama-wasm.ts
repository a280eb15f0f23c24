/**
 * llama.cpp in WebAssembly (scripts/build-llama-wasm.sh builds it from the source node-llama-cpp ships): one model
 * and one context per module instance, called synchronously in the thread that opened it. This is the bare llama.cpp
 * surface the CPU engine needs — exact ids in, greedy picks and top candidates out, KV trims and state files — with its memory
 * handling (strings and arrays copied in and out of the module's heap) kept here.
 *
 * Two builds: one thread (bundled), and llama.cpp's threads as Web Workers over shared memory (only where the page is
 * cross-origin isolated). The threaded build's script stays a file of its own: each of its workers imports it by URL.
 */
import createFerryLlama, { type FerryLlamaModule, type FerryLlamaOptions } from './llama-wasm/ferry-llama.js';
import wasmUrl from './llama-wasm/ferry-llama.wasm?url';
import threadedJsUrl from './llama-wasm/ferry-llama-mt.js?url';
import threadedWasmUrl from './llama-wasm/ferry-llama-mt.wasm?url';
// A thread's script as text, started from a blob: a classic worker script that no bundler or dev server may rewrite.
import threadedWorkerSource from './llama-wasm/ferry-llama-mt.worker.js?raw';
import type { Candidate } from '../../core/llm/sampler.ts';

export interface LlamaWasmOptions {
  readonly contextSize: number;
  /** More than one loads the threaded build, which needs cross-origin isolation (the caller checks). */
  readonly threads: number;
}

/** A llama.cpp call failed; `reason` says how, for the engine's typed error. */
export class LlamaWasmError extends Error {
  constructor(
    readonly reason: 'load-failed' | 'context-failed' | 'context-full' | 'decode-failed' | 'state-failed',
    message: string,
  ) {
    super(message);
    this.name = 'LlamaWasmError';
  }
}

const QUIET = { print: () => undefined, printErr: () => undefined };

let threadScript: string | undefined;

async function threadedModule(threads: number): Promise<FerryLlamaModule> {
  const script = new URL(threadedJsUrl, globalThis.location.href).href;
  const { default: create } = (await import(/* @vite-ignore */ script)) as { default: typeof createFerryLlama };
  threadScript ??= URL.createObjectURL(new Blob([threadedWorkerSource], { type: 'text/javascript' }));
  const worker = threadScript;
  const options: FerryLlamaOptions & { mainScriptUrlOrBlob: string; pthreadPoolSize: number } = {
    locateFile: (path) => (path.endsWith('.worker.js') ? worker : threadedWasmUrl),
    mainScriptUrlOrBlob: script,
    // llama.cpp's compute threads besides the caller, and one to spare: each must exist before a call blocks.
    pthreadPoolSize: threads,
    ...QUIET,
  };
  return create(options);
}

/** Ends the threaded build's workers: each holds the module's memory, which would otherwise outlive the engine. */
function release(m: FerryLlamaModule): void {
  m.PThread?.terminateAllThreads();
}

/** Writes `bytes` as the in-memory file `path` without a copy: the file keeps the array, which must not change after. */
function handOver(m: FerryLlamaModule, path: string, bytes: Uint8Array): void {
  const file = m.FS.open(path, 'w');
  m.FS.write(file, bytes, 0, bytes.length, 0, true);
  m.FS.close(file);
}

/** Prompt batches: llama.cpp decodes this many ids per call, and a cancel is seen between calls. */
const BATCH = 512;
const MODEL_PATH = '/model.gguf';
/** Where a KV state file passes through (llama.cpp reads and writes them only as files; here, in memory). */
const STATE_PATH = '/kv.state';

export class LlamaWasm {
  readonly vocabularySize: number;
  readonly contextSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  /** The llama.cpp commit it was built from: node-llama-cpp's, whose KV state files it reads and writes. */
  readonly llamaCommit: string;
  readonly #batch: number;
  #freed = false;

  private constructor(private readonly m: FerryLlamaModule) {
    this.vocabularySize = m._fl_n_vocab();
    this.contextSize = m._fl_n_ctx();
    this.#batch = m._fl_n_batch();
    this.bos = m._fl_bos();
    this.eos = m._fl_eos();
    this.addBos = m._fl_add_bos() === 1;
    this.llamaCommit = m.UTF8ToString(m._fl_llama_commit());
  }

  /** Loads a GGUF file (checked by the caller first). The file is handed to llama.cpp without a copy and dropped once read. */
  static async open(model: Blob, options: LlamaWasmOptions): Promise<LlamaWasm> {
    const m = options.threads > 1 ? await threadedModule(options.threads) : await createFerryLlama({ locateFile: () => wasmUrl, ...QUIET });
    try {
      handOver(m, MODEL_PATH, new Uint8Array(await model.arrayBuffer()));
      const path = m._malloc(MODEL_PATH.length + 1);
      m.HEAPU8.set(new TextEncoder().encode(`${MODEL_PATH}\0`), path);
      const code = m._fl_load(path, options.contextSize, Math.min(BATCH, options.contextSize), options.threads);
      m._free(path);
      m.FS.unlink(MODEL_PATH);
      if (code !== 0) {
        const why = m.UTF8ToString(m._fl_last_error()) || 'no reason given';
        throw code === -1
          ? new LlamaWasmError('load-failed', `llama.cpp could not load the model (${why})`)
          : new LlamaWasmError('context-failed', `llama.cpp could not make a context of ${options.contextSize} tokens (${why})`);
      }
    } catch (cause) {
      // The module is dropped (the file and all with it); its threads must end, or they keep its memory alive.
      release(m);
      throw cause;
    }
    return new LlamaWasm(m);
  }

  tokenize(text: string, special: boolean): number[] {
    const bytes = new TextEncoder().encode(text);
    return this.#withBytes(bytes, (ptr) => {
      let max = bytes.length + 8;
      for (;;) {
        const out = this.m._malloc(max * 4);
        try {
          const n = this.m._fl_tokenize(ptr, bytes.length, special ? 1 : 0, out, max);
          if (n >= 0) return Array.from(this.m.HEAP32.subarray(out >> 2, (out >> 2) + n));
          max = -n;
        } finally {
          this.m._free(out);
        }
      }
    });
  }

  /** A token's bytes, control tokens as their text. */
  piece(id: number): Uint8Array {
    let max = 64;
    for (;;) {
      const out = this.m._malloc(max);
      try {
        const n = this.m._fl_piece(id, out, max);
        if (n >= 0) return this.m.HEAPU8.slice(out, out + n);
        max = -n;
      } finally {
        this.m._free(out);
      }
    }
  }

  /**
   * Appends ids to the sequence, in batches; logits are kept for the last. Between batches it gives the thread's
   * other work a turn and stops if `signal` was aborted: false, with the ids decoded so far left in the sequence.
   */
  async decode(ids: readonly number[], signal?: AbortSignal): Promise<boolean> {
    for (let at = 0; at < ids.length; at += this.#batch) {
      if (at > 0) await yieldTurn();
      if (signal?.aborted) return false;
      const part = ids.slice(at, at + this.#batch);
      const code = this.#withInts(part, (ptr) => this.m._fl_decode(ptr, part.length));
      if (code === 1) throw new LlamaWasmError('context-full', 'the context is full');
      if (code !== 0) throw new LlamaWasmError('decode-failed', `llama_decode failed (code ${code})`);
    }
    return true;
  }

  /** Keeps the first `count` positions of the sequence. */
  keep(count: number): void {
    if (this.m._fl_keep(count) !== 1) throw new LlamaWasmError('decode-failed', `llama.cpp could not trim the context to ${count} tokens`);
  }

  /** The most likely next token (of equal ones the lowest id, as llama.cpp's greedy sampler picks). */
  argmax(): number {
    return this.m._fl_argmax();
  }

  /** The `k` most likely next tokens, most likely first (ties: lowest id first), with their probabilities. */
  top(k: number): Candidate[] {
    const ids = this.m._malloc(k * 4);
    const probs = this.m._malloc(k * 4);
    try {
      const n = this.m._fl_top(k, ids, probs);
      const id = this.m.HEAP32.subarray(ids >> 2, (ids >> 2) + n);
      const p = this.m.HEAPF32.subarray(probs >> 2, (probs >> 2) + n);
      return Array.from(id, (token, i) => ({ token, p: p[i]! }));
    } finally {
      this.m._free(ids);
      this.m._free(probs);
    }
  }

  /** The sequence's KV as llama.cpp's sequence state file (node-llama-cpp's format), recording the `ids` it covers. */
  saveState(ids: readonly number[]): Uint8Array {
    const saved = this.#withPath(STATE_PATH, (path) => this.#withInts(ids, (ptr) => this.m._fl_state_save(path, ptr, ids.length)));
    try {
      if (saved !== 1) throw new LlamaWasmError('state-failed', `llama.cpp could not save the KV state (${this.#lastError()})`);
      return this.m.FS.readFile(STATE_PATH);
    } finally {
      this.#unlink(STATE_PATH);
    }
  }

  /**
   * Replaces the sequence's KV with a state file's (`bytes`, handed over: not to be changed after); returns the ids it
   * covers (at most `maxTokens`). The sequence is left empty when llama.cpp refuses the file.
   */
  loadState(bytes: Uint8Array, maxTokens: number): number[] {
    handOver(this.m, STATE_PATH, bytes);
    const out = this.m._malloc(Math.max(1, maxTokens) * 4);
    try {
      const n = this.#withPath(STATE_PATH, (path) => this.m._fl_state_load(path, out, maxTokens));
      if (n < 0) {
        this.keep(0);
        throw new LlamaWasmError('state-failed', `llama.cpp refused the KV state (${this.#lastError()})`);
      }
      return Array.from(this.m.HEAP32.subarray(out >> 2, (out >> 2) + n));
    } finally {
      this.m._free(out);
      this.#unlink(STATE_PATH);
    }
  }

  isEog(id: number): boolean {
    return this.m._fl_is_eog(id) === 1;
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.m._fl_free();
    release(this.m);
  }

  #lastError(): string {
    return this.m.UTF8ToString(this.m._fl_last_error()) || 'no reason given';
  }

  #unlink(path: string): void {
    try {
      this.m.FS.unlink(path);
    } catch {
      // Never written.
    }
  }

  #withPath<T>(path: string, fn: (ptr: number) => T): T {
    return this.#withBytes(new TextEncoder().encode(`${path}\0`), fn);
  }

  #withBytes<T>(bytes: Uint8Array, fn: (ptr: number) => T): T {
    const ptr = this.m._malloc(Math.max(1, bytes.length));
    try {
      this.m.HEAPU8.set(bytes, ptr);
      return fn(ptr);
    } finally {
      this.m._free(ptr);
    }
  }

  #withInts<T>(ints: readonly number[], fn: (ptr: number) => T): T {
    const ptr = this.m._malloc(Math.max(1, ints.length) * 4);
    try {
      this.m.HEAP32.set(ints, ptr >> 2);
      return fn(ptr);
    } finally {
      this.m._free(ptr);
    }
  }
}

/** One channel per thread for yieldTurn; its messages come back in order, so the waiters are a queue. */
let turns: { port: MessagePort; waiting: Array<() => void> } | undefined;

/**
 * One turn of the thread's event loop (a message, not a timer: no clamping): llama.cpp's calls block the thread, so
 * a long generation yields between steps for the messages waiting on it — a cancel among them.
 */
export function yieldTurn(): Promise<void> {
  if (!turns) {
    const channel = new MessageChannel();
    const waiting: Array<() => void> = [];
    channel.port1.onmessage = () => waiting.shift()?.();
    turns = { port: channel.port2, waiting };
  }
  const { port, waiting } = turns;
  return new Promise((resolve) => {
    waiting.push(resolve);
    port.postMessage(undefined);
  });
}
