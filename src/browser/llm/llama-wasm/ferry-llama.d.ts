/**
 * The module scripts/build-llama-wasm.sh builds from native/llama-wasm/ferry-llama.c (Emscripten, MODULARIZE + ES6):
 * its exported calls, each as the C declares it (pointers are offsets into HEAPU8).
 */
export interface FerryLlamaModule {
  _fl_load(path: number, contextSize: number, batchSize: number, threads: number): number;
  _fl_free(): void;
  _fl_last_error(): number;
  _fl_n_vocab(): number;
  _fl_n_ctx(): number;
  _fl_n_batch(): number;
  _fl_bos(): number;
  _fl_eos(): number;
  _fl_add_bos(): number;
  _fl_is_eog(id: number): number;
  _fl_tokenize(text: number, length: number, special: number, out: number, max: number): number;
  _fl_piece(id: number, out: number, max: number): number;
  _fl_decode(ids: number, count: number): number;
  _fl_keep(count: number): number;
  _fl_argmax(): number;
  _fl_top(k: number, ids: number, probs: number): number;
  _fl_llama_commit(): number;
  _fl_state_save(path: number, ids: number, count: number): number;
  _fl_state_load(path: number, ids: number, max: number): number;
  _malloc(size: number): number;
  _free(pointer: number): void;
  readonly HEAPU8: Uint8Array;
  readonly HEAP32: Int32Array;
  readonly HEAPF32: Float32Array;
  readonly FS: {
    open(path: string, flags: string): unknown;
    /** `canOwn`: the file keeps `data` itself rather than a copy. */
    write(stream: unknown, data: Uint8Array, offset: number, length: number, position: number, canOwn?: boolean): number;
    close(stream: unknown): void;
    unlink(path: string): void;
    readFile(path: string): Uint8Array;
  };
  UTF8ToString(pointer: number): string;
  /** The threaded build's workers (absent from the one-thread build). */
  readonly PThread?: { terminateAllThreads(): void };
}

export interface FerryLlamaOptions {
  locateFile?(path: string, prefix: string): string;
  print?(text: string): void;
  printErr?(text: string): void;
}

export default function createFerryLlama(options?: FerryLlamaOptions): Promise<FerryLlamaModule>;
