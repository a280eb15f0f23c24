/**
 * Accelerator state across hosts (DESIGN.md §4, issue 6): the engine's KV cache of a session's slot, shipped in a
 * checkpoint where it pays, so the host that resumes the session skips the prefill of the tokens it covers.
 *
 * The KV is a cache, never the truth: the transcript's token ids are. So it is saved only where a run ends (hand
 * back, finish — never per step: it can be MBs), kept under a reserved component name `kv/<engine id>` (the session
 * core chunks it like any image: a later checkpoint that leaves it alone costs nothing, sync sends only missing
 * pages), and on the way in it is validated before the engine sees it. Anything wrong with it — damaged, another
 * engine or model, too small to pay — means re-prefill, said in a `kv` event, never a failed resume.
 *
 * Entry layout: 'FKVS', u32 LE format version, u32 LE header length, the header (canonical MessagePack
 * `{ engine, model, tokens, sha256 }`: what the state covers, and the SHA-256 of the state bytes — llama.cpp would
 * load flipped tensor bytes without a word and generate other tokens), then the engine's opaque state bytes.
 */
import { FerryError } from '../errors.ts';
import type { Engine, KvState } from '../llm/engine.ts';
import { kvFormatOf } from '../llm/kv-state.ts';
import { decodeMsgpack, encodeCanonical } from '../session/canonical.ts';
import type { Session } from '../session/index.ts';
import type { ObjectId } from '../store/index.ts';
import { KV_PREFIX, kvComponentName } from '../snapshot/kv.ts';

const MAGIC = [0x46, 0x4b, 0x56, 0x53]; // 'FKVS'
const VERSION = 1;
/** Bounds a hostile or damaged entry before anything is allocated for it. */
const MAX_HEADER_BYTES = 8 << 20;
export const MAX_KV_BYTES = 1 << 30;
const MAX_TOKENS = 1 << 20;

// The entry's place in the session graph (and that it is detachable there) is the snapshot layer's to know.
export { KV_PREFIX, kvComponentName } from '../snapshot/kv.ts';

/**
 * When shipping pays (the rule both sides apply): loading `bytes` at `loadBytesPerSec` must beat prefilling
 * `tokens` at the engine's measured `prefillTps`, and the state must be worth the bother (`minTokens`) and bounded
 * (`maxBytes`, so a session never drags a huge cache to a device).
 */
export interface KvPolicy {
  /** Save the slot's KV into the checkpoint that ends a run (hand back, idle, done). Default false. */
  save?: boolean;
  /** Load a matching KV entry when a session is opened here. Default true. */
  load?: boolean;
  /** This engine's measured prefill rate, tokens/s (a worker's profile). 0/absent: unknown, assume shipping pays. */
  prefillTps?: number;
  /** How fast a state loads into the engine, bytes/s (read + copy into the accelerator). Default 500 MB/s. */
  loadBytesPerSec?: number;
  /** Below this many covered tokens the prefill is cheap enough: not saved, not loaded. Default 32. */
  minTokens?: number;
  /** Larger states are not saved. Default 256 MiB. */
  maxBytes?: number;
}

const DEFAULTS = { loadBytesPerSec: 500e6, minTokens: 32, maxBytes: 256 << 20 } as const;

export type KvEvent =
  | { type: 'kv'; action: 'saved'; tokens: number; bytes: number }
  | { type: 'kv'; action: 'loaded' | 'prefill'; tokens: number; bytes: number; reason: string };

/** Whether a state of `bytes` covering `tokens` is worth shipping; the reason in words either way. */
export function kvPays(tokens: number, bytes: number, policy: KvPolicy = {}): { pays: boolean; reason: string } {
  const minTokens = policy.minTokens ?? DEFAULTS.minTokens;
  const maxBytes = policy.maxBytes ?? DEFAULTS.maxBytes;
  if (tokens < minTokens) return { pays: false, reason: `it covers ${tokens} tokens, under ${minTokens}: prefill is cheap` };
  if (bytes > maxBytes) return { pays: false, reason: `it is ${bytes} bytes, over the ${maxBytes}-byte limit` };
  const loadMs = (bytes / (policy.loadBytesPerSec ?? DEFAULTS.loadBytesPerSec)) * 1000;
  const tps = policy.prefillTps ?? 0;
  if (!(tps > 0)) return { pays: true, reason: `loading ~${loadMs.toFixed(1)} ms; prefill rate unknown` };
  const prefillMs = (tokens / tps) * 1000;
  return loadMs < prefillMs
    ? { pays: true, reason: `loading ~${loadMs.toFixed(1)} ms beats prefilling ${tokens} tokens ~${prefillMs.toFixed(1)} ms at ${Math.round(tps)} tok/s` }
    : { pays: false, reason: `prefilling ${tokens} tokens ~${prefillMs.toFixed(1)} ms beats loading ~${loadMs.toFixed(1)} ms` };
}

const sha256Hex = async (bytes: Uint8Array): Promise<string> =>
  Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>)), (b) => b.toString(16).padStart(2, '0')).join('');

export async function encodeKvEntry(state: KvState): Promise<Uint8Array> {
  const header = encodeCanonical({ engine: state.engine, model: state.model, tokens: [...state.tokens], sha256: await sha256Hex(state.bytes) });
  const out = new Uint8Array(12 + header.length + state.bytes.length);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, header.length, true);
  out.set(header, 12);
  out.set(state.bytes, 12 + header.length);
  return out;
}

/** The one restore function for a KV entry: versioned, bounded, typed (`runtime/bad-kv`). */
export async function decodeKvEntry(entry: Uint8Array): Promise<KvState> {
  const bad = (why: string) => new FerryError('runtime/bad-kv', `The saved KV state in this checkpoint is unusable: ${why}. The transcript will be prefilled instead.`);
  if (entry.length < 12 || MAGIC.some((b, i) => entry[i] !== b)) throw bad('it is not a Ferry KV entry');
  if (entry.length > MAX_KV_BYTES) throw bad(`it is ${entry.length} bytes, over ${MAX_KV_BYTES}`);
  const view = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  const version = view.getUint32(4, true);
  if (version !== VERSION) throw bad(`format version ${version}, this build reads ${VERSION}`);
  const headerLength = view.getUint32(8, true);
  if (headerLength > MAX_HEADER_BYTES || 12 + headerLength > entry.length) throw bad('its header does not fit');
  const header = decodeMsgpack(entry.subarray(12, 12 + headerLength), 'runtime/bad-kv', 'The header of a saved KV state') as Record<string, unknown> | null;
  const tokens = header?.tokens;
  const ok = typeof header?.engine === 'string' && typeof header.model === 'string' && typeof header.sha256 === 'string' && Array.isArray(tokens) && tokens.length <= MAX_TOKENS &&
    tokens.every((t) => Number.isInteger(t) && (t as number) >= 0 && (t as number) <= 0xffffffff);
  if (!ok) throw bad('its header is malformed');
  const bytes = entry.subarray(12 + headerLength);
  if (bytes.length === 0) throw bad('it holds no state bytes');
  if ((await sha256Hex(bytes)) !== header.sha256) throw bad('its state bytes do not match their checksum (damaged)');
  return { engine: header.engine as string, model: header.model as string, tokens: tokens as number[], bytes };
}

/**
 * The slot's KV as a checkpoint entry, when the engine can save it and the policy says it pays; null otherwise
 * (the caller checkpoints without it). A failed save never fails the step: the cache is only a cache.
 */
export async function captureKv(engine: Engine, slot: string, policy: KvPolicy): Promise<{ entry: Uint8Array; event: KvEvent } | null> {
  if (!engine.info.kvState || !engine.saveKv) return null;
  let state: KvState;
  try {
    state = await engine.saveKv(slot);
  } catch {
    return null; // e.g. the slot was evicted: nothing worth shipping
  }
  if (!kvPays(state.tokens.length, state.bytes.length, policy).pays) return null;
  const entry = await encodeKvEntry(state);
  return { entry, event: { type: 'kv', action: 'saved', tokens: state.tokens.length, bytes: entry.length } };
}

/**
 * Loads the KV entry of checkpoint `at` into `slot` when it matches this engine and pays; says what happened.
 * Returns null when the checkpoint has no KV entry at all (nothing to say: the normal re-prefill).
 */
export async function restoreKv(engine: Engine, slot: string, session: Session, at: ObjectId, policy: KvPolicy): Promise<KvEvent | null> {
  const names = Object.keys((await session.checkpoint(at)).components).filter((n) => n.startsWith(KV_PREFIX));
  if (names.length === 0) return null;
  const prefill = (reason: string, tokens = 0, bytes = 0): KvEvent => ({ type: 'kv', action: 'prefill', tokens, bytes, reason });
  const format = kvFormatOf(engine.info);
  const own = kvComponentName(format);
  if (!engine.info.kvState || !engine.loadKv) return prefill(`engine ${engine.info.id} cannot load KV state`);
  if (!names.includes(own)) return prefill(`the saved KV state is another engine's (${names.map((n) => n.slice(KV_PREFIX.length)).join(', ')})`);
  if (policy.load === false) return prefill('KV loading is off on this host');
  let state: KvState;
  let size = 0;
  try {
    const entry = await session.component(at, own);
    size = entry.length;
    state = await decodeKvEntry(entry);
  } catch (err) {
    return prefill(err instanceof Error ? err.message : String(err), 0, size);
  }
  const tokens = state.tokens.length;
  if (state.engine !== format) return prefill(`the saved KV state is ${state.engine}'s, this engine loads ${format}'s`, tokens, size);
  if (state.model !== engine.info.model) return prefill(`the saved KV state is for model ${state.model.slice(0, 12)}, this engine runs ${engine.info.model.slice(0, 12)}`, tokens, size);
  if (tokens >= engine.info.contextSize) return prefill(`it covers ${tokens} tokens, more than this engine's context of ${engine.info.contextSize}`, tokens, size);
  const verdict = kvPays(tokens, size, policy);
  if (!verdict.pays) return prefill(verdict.reason, tokens, size);
  try {
    await engine.loadKv(slot, state);
  } catch (err) {
    return prefill(`the engine refused it: ${err instanceof Error ? err.message : String(err)}`, tokens, size);
  }
  return { type: 'kv', action: 'loaded', tokens, bytes: size, reason: verdict.reason };
}
