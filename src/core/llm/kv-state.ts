import { FerryError } from '../../src/core/errors.ts';

/**
 * llama.cpp's sequence state file records how many KV streams its context had (one per sequence), and refuses to
 * load into a context with another count ("n_stream mismatch"): a state saved by a 1-slot worker would not load
 * into a 4-slot one. A sequence's file holds one entry per stream, all empty (a zero cell count) but the one of
 * the saving sequence, and loading takes any non-empty entry into the loading sequence's stream. So a state is
 * kept in a canonical one-stream form, and widened to the loading context's stream count on the way in.
 *
 * Layout (llama_state_seq_save_file, format version 3): u32 magic 'ggsq', u32 version, u32 token count, the
 * tokens (u32 each), u32 n_stream, then n_stream entries each starting with a u32 cell count.
 */
const MAGIC = 0x67677371;
const VERSION = 3;

interface Parsed {
  readonly head: Uint8Array;
  readonly entry: Uint8Array;
}

function parse(bytes: Uint8Array): Parsed {
  const bad = (why: string) => new FerryError('llm/kv-format', `The KV state is not a llama.cpp sequence state this engine can read: ${why}. Re-prefill the transcript instead.`);
  if (bytes.length < 16) throw bad('it is too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw bad('wrong magic number');
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw bad(`format version ${version}, expected ${VERSION}`);
  const tokens = view.getUint32(8, true);
  const streamsAt = 12 + 4 * tokens;
  if (streamsAt + 4 > bytes.length) throw bad('it ends inside its token list');
  const streams = view.getUint32(streamsAt, true);
  const first = streamsAt + 4;
  if (streams < 1 || first + 4 * streams > bytes.length) throw bad(`${streams} KV streams do not fit in ${bytes.length} bytes`);
  let leading = 0;
  while (leading < streams && view.getUint32(first + 4 * leading, true) === 0) leading++;
  const head = bytes.subarray(0, streamsAt);
  if (leading === streams) return { head, entry: new Uint8Array(4) }; // every stream empty
  const trailing = streams - 1 - leading;
  const end = bytes.length - 4 * trailing;
  for (let at = end; at < bytes.length; at += 4) {
    if (view.getUint32(at, true) !== 0) throw bad('more than one KV stream holds cells');
  }
  return { head, entry: bytes.subarray(first + 4 * leading, end) };
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
