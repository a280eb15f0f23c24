/**
 * The CPU engine's KV as llama.cpp's sequence state file — node-llama-cpp's format too (core/llm/kv-state.ts), so a
 * session handed back from a cloud worker loads the worker's KV here instead of prefilling its transcript.
 */
import { FerryError } from '../../core/errors.ts';
import { canonicalKv, corruptKv, kvForStreams, kvFormatOf } from '../../core/llm/index.ts';
import type { EngineInfo, KvState } from '../../core/llm/index.ts';
import type { LlamaWasm } from './llama-wasm.ts';

/** The context's KV with the ids it covers (`tokens`). */
export function saveKvState(llama: LlamaWasm, info: EngineInfo, tokens: readonly number[]): KvState {
  try {
    return { engine: kvFormatOf(info), model: info.model, tokens: [...tokens], bytes: canonicalKv(llama.saveState(tokens)) };
  } catch (cause) {
    throw new FerryError('llm/kv-save-failed', `Could not save the KV state: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/**
 * Loads `state`, already checked to cover `tokens` (checkKvState: llama.cpp's reader does not bound its reads, so a
 * state is parsed whole before it sees a byte); returns the ids the context holds now. Throws llm/kv-load-failed
 * when llama.cpp refuses it, llm/kv-corrupt when it loads other ids than it claims.
 */
export function loadKvState(llama: LlamaWasm, state: KvState, tokens: readonly number[]): number[] {
  let loaded: number[];
  try {
    loaded = llama.loadState(kvForStreams(state.bytes, 1), tokens.length);
  } catch (cause) {
    throw new FerryError('llm/kv-load-failed', `Could not load the KV state: ${cause instanceof Error ? cause.message : String(cause)}. Re-prefill the transcript instead.`, { cause });
  }
  if (loaded.length !== tokens.length || loaded.some((t, i) => t !== tokens[i])) throw corruptKv();
  return loaded;
}
