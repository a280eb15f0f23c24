import { FerryError } from '../errors.ts';
import type { EngineInfo, KvState } from './engine.ts';
import { checkTokenIds } from './prompt.ts';

/**
 * llama.cpp's sequence state files: what node-llama-cpp and the CPU engine (llama.cpp in WebAssembly) save a slot's KV
 * as, and load it from. Both run llama.cpp built from the same source (the one node-llama-cpp ships), so a state one
 * saves, the other loads: the format is named by that source's commit (`llamaCppKvFormat`), and engines of one format
 * and one model file load each other's KV — a session handed back from a cloud worker to a CPU-only device resumes
 * without prefilling its transcript there.
 *
 * llama.cpp's sequence state file records how many KV streams its context had (one per sequence), and refuses to
 * load into a context with another count ("n_stream mismatch"): a state saved by a 1-slot worker would not load
 * into a 4-slot one. A sequence's file holds one entry per stream, all empty (a zero cell count) but the one of
 * the saving sequence, and loading takes any non-empty entry into the loading sequence's stream. So a state is
 * kept in a canonical one-stream form, and widened to the loading context's stream count on the way in.
 *
 * Layout (llama_state_seq_save_file, format version 3): u32 magic 'ggsq', u32 version, u32 token count, the
 * tokens (u32 each), u32 n_stream, then n_stream entries each starting with a u32 cell count.
 *
 * llama.cpp does not bound its reads by the file: a state cut short is read past its end and then aborts the process
 * (an assertion, in native code and in WebAssembly alike). So every state is parsed whole here, before any engine
 * sees it, and must be exactly as long as its own counts say (`checkEntry`).
 */
const MAGIC = 0x67677371;
const VERSION = 3;
/** Bounds on what a state may declare, far above any model's, so the sizes below never overflow. */
const MAX_LAYERS = 4096;
const MAX_ROW_BYTES = 1 << 24;
const MAX_ELEMENT_BYTES = 8;

const badState = (why: string): FerryError =>
  new FerryError('llm/kv-format', `The KV state is not a llama.cpp sequence state this engine can read: ${why}. Re-prefill the transcript instead.`);

/**
 * One stream's entry, checked to be exactly what llama.cpp writes for a sequence (llama-kv-cache.cpp state_write):
 * u32 cell count; per cell i32 position, u32 sequence count (1) and the i32 sequence id; then u32 v_trans, u32 layer
 * count, per layer the keys (i32 type, u64 row bytes, a row per cell), then per layer with values either the same
 * (v_trans 0) or, transposed, i32 type, u32 element bytes, u32 rows and a cell's element per row.
 */
function checkEntry(entry: Uint8Array): void {
  const view = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  let at = 0;
  const need = (n: number, what: string) => {
    if (n > entry.length - at) throw badState(`it ends inside ${what}`);
  };
  const u32 = (what: string) => {
    need(4, what);
    at += 4;
    return view.getUint32(at - 4, true);
  };
  const u64 = (what: string) => {
    need(8, what);
    at += 8;
    if (view.getUint32(at - 4, true) !== 0) throw badState(`${what} is out of bounds`);
    return view.getUint32(at - 8, true);
  };
  const skip = (n: number, what: string) => {
    need(n, what);
    at += n;
  };
  const cells = u32('its cell count');
  if (cells === 0) {
    if (at !== entry.length) throw badState('an empty stream carries data');
    return;
  }
  for (let i = 0; i < cells; i++) {
    need(12, 'its cells');
    if (view.getInt32(at, true) < 0) throw badState(`cell ${i} has a negative position`);
    if (view.getUint32(at + 4, true) !== 1) throw badState(`cell ${i} does not belong to exactly one sequence`);
    at += 12;
  }
  const vTrans = u32('its value layout');
  const layers = u32('its layer count');
  if (vTrans > 1) throw badState(`value layout ${vTrans} is unknown`);
  if (layers < 1 || layers > MAX_LAYERS) throw badState(`${layers} layers is out of bounds`);
  const rows = (what: string) => {
    u32(`${what} type`);
    const row = u64(`${what} row size`);
    if (row < 1 || row > MAX_ROW_BYTES) throw badState(`${what} row size ${row} is out of bounds`);
    skip(row * cells, `${what} rows`);
  };
  for (let l = 0; l < layers; l++) rows(`layer ${l}'s keys`);
  // Layers without values write none: as many value sections as there are, up to one per layer.
  for (let l = 0; l < layers && at < entry.length; l++) {
    if (vTrans === 0) {
      rows(`layer ${l}'s values`);
      continue;
    }
    u32(`layer ${l}'s value type`);
    const element = u32(`layer ${l}'s value element size`);
    const width = u32(`layer ${l}'s value width`);
    if (element < 1 || element > MAX_ELEMENT_BYTES || width < 1 || width * element > MAX_ROW_BYTES) throw badState(`layer ${l}'s value shape is out of bounds`);
    skip(width * element * cells, `layer ${l}'s values`);
  }
  if (at !== entry.length) throw badState(`${entry.length - at} bytes follow its last layer`);
}

interface Parsed {
  readonly head: Uint8Array;
  readonly entry: Uint8Array;
}

function parse(bytes: Uint8Array): Parsed {
  if (bytes.length < 16) throw badState('it is too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw badState('wrong magic number');
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw badState(`format version ${version}, expected ${VERSION}`);
  const tokens = view.getUint32(8, true);
  const streamsAt = 12 + 4 * tokens;
  if (streamsAt + 4 > bytes.length) throw badState('it ends inside its token list');
  const streams = view.getUint32(streamsAt, true);
  const first = streamsAt + 4;
  if (streams < 1 || first + 4 * streams > bytes.length) throw badState(`${streams} KV streams do not fit in ${bytes.length} bytes`);
  let leading = 0;
  while (leading < streams && view.getUint32(first + 4 * leading, true) === 0) leading++;
  const head = bytes.subarray(0, streamsAt);
  if (leading === streams) {
    if (first + 4 * streams !== bytes.length) throw badState('its empty streams carry data');
    return { head, entry: new Uint8Array(4) };
  }
  const trailing = streams - 1 - leading;
  const end = bytes.length - 4 * trailing;
  if (end < first + 4 * leading) throw badState(`${streams} KV streams do not fit in ${bytes.length} bytes`);
  for (let at = end; at < bytes.length; at += 4) {
    if (view.getUint32(at, true) !== 0) throw badState('more than one KV stream holds cells');
  }
  const entry = bytes.subarray(first + 4 * leading, end);
  checkEntry(entry);
  return { head, entry };
}

function build(head: Uint8Array, entry: Uint8Array, streams: number): Uint8Array {
  const out = new Uint8Array(head.length + 4 + entry.length + 4 * (streams - 1));
  out.set(head, 0);
  new DataView(out.buffer).setUint32(head.length, streams, true);
  out.set(entry, head.length + 4);
  return out; // the other streams' entries are the zero cell counts already there
}

/** The one-stream form of a saved sequence state: the same bytes whatever the saving context's slot count. */
export function canonicalKv(bytes: Uint8Array): Uint8Array {
  const { head, entry } = parse(bytes);
  return build(head, entry, 1);
}

/** A state widened for a context with `streams` sequences. */
export function kvForStreams(bytes: Uint8Array, streams: number): Uint8Array {
  const { head, entry } = parse(bytes);
  return build(head, entry, streams);
}

/** The token ids a state file says it covers. */
export function kvTokens(bytes: Uint8Array): number[] {
  const { head } = parse(bytes);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return Array.from({ length: view.getUint32(8, true) }, (_, i) => view.getUint32(12 + 4 * i, true));
}

/** The KV format (EngineInfo.kvFormat) of engines running llama.cpp built from `commit`: they load each other's states. */
export function llamaCppKvFormat(commit: string): string {
  return `llama.cpp@${commit.slice(0, 12)}`;
}

/** The KV format of an engine: whose saved states it loads, and what its own are labelled (KvState.engine). */
export function kvFormatOf(info: Pick<EngineInfo, 'id' | 'kvFormat'>): string {
  return info.kvFormat ?? info.id;
}

/**
 * A state about to be loaded by an engine of `info`, checked: it is of the engine's KV format and model, its ids are
 * in the vocabulary and leave room in the context, and the state file holds exactly those ids. Returns the ids.
 */
export function checkKvState(info: EngineInfo, state: KvState, vocabularySize: number): number[] {
  const format = kvFormatOf(info);
  if (state.engine !== format || state.model !== info.model) {
    throw new FerryError('llm/kv-mismatch', `This KV state was saved in format ${state.engine} for model ${state.model}; this engine loads ${format} for model ${info.model}. Re-prefill the transcript instead.`, {
      details: { engine: state.engine, model: state.model },
    });
  }
  const tokens = checkTokenIds(state.tokens, vocabularySize);
  if (tokens.length >= info.contextSize) {
    throw new FerryError('llm/context-overflow', `The KV state covers ${tokens.length} tokens; this engine's context holds ${info.contextSize}.`);
  }
  const inFile = kvTokens(state.bytes);
  if (inFile.length !== tokens.length || inFile.some((t, i) => t !== tokens[i])) throw corruptKv();
  return tokens;
}

/** A state whose bytes do not hold the ids it says it covers. */
export const corruptKv = (): FerryError =>
  new FerryError('llm/kv-mismatch', 'The KV state bytes do not hold the tokens the state says they hold; it is corrupt. Re-prefill the transcript instead.');
