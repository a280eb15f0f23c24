/**
 * Checkpoint wiring: after every step, each component's state goes into the session as chunks — a keyframe now
 * and then, a small XOR delta otherwise (state-codec.ts) — next to the loop's own state, the step's events, the
 * LLM settings and counters, in one atomic session append. Restoring reads a component's keyframe and the deltas
 * after it back along the checkpoint's ancestry.
 *
 * Session component names: `<name>/key` (the keyframe), `<name>/delta` (this step's delta; absent when the
 * component did not change), and `host/loop` (loop state + which component builds make up the agent).
 */
import { FerryError } from '../errors.ts';
import { bytesEqual, decodeMsgpack, encodeCanonical } from '../session/canonical.ts';
import type { LlmSettings, Session } from '../session/index.ts';
import type { ObjectId } from '../store/index.ts';
import type { ComponentInstance } from './instance.ts';
import type { HeldContext, LoopState } from './loop.ts';
import { MAX_WIRE_PREFIXES } from '../llm/prefix-keys.ts';
import { blobHeader, decodeChain, deltaIsEmpty, encodeDelta, encodeKeyframe, encodeSnapshot, snapshotOf } from './state-codec.ts';
import { resultError } from './wit.ts';
import type { StateImage } from './image.ts';

/** A component whose state the host checkpoints: in this thread (instanceState) or in a tool worker. */
export interface StatefulComponent {
  /** Name within the session: "agent" or "tool.<name>". */
  readonly name: string;
  /** The component build (its id); an image restores only into the same build. */
  readonly componentId: string;
  /** The state as a keyframe, or what changed since the last capture as a delta; null when nothing changed. */
  capture(kind: 'key' | 'delta', chain: string, seq: number): Promise<Uint8Array | null>;
  /** Puts the component into the state a keyframe + deltas describe (on a fresh instance where needed). */
  restore(chain: readonly Uint8Array[]): Promise<void>;
}

/**
 * A chain longer than this is cut by a keyframe, so a restore applies at most this many deltas: each costs a read and a
 * decode, and a few dozen of them cost more than instantiating the component (`npm run bench -- runtime`).
 */
export const MAX_CHAIN = 8;
/**
 * A new keyframe also once the deltas since the last one outweigh it this many times: keyframes are taken against
 * the fresh image, so they are small, but each costs a full capture.
 */
export const KEYFRAME_RATIO = 4;

export const LOOP_COMPONENT = 'host/loop';

/** What `host/loop` holds: the loop's state and the component builds, so a session says how to rebuild itself. */
export interface HostState {
  loop: LoopState;
  agent: string;
  tools: { name: string; component: string }[];
}

/** State capture of a component instance in this thread: its `state` interface when it exports one, else its memory image. */
export function instanceState(name: string, instance: ComponentInstance): StatefulComponent & { instance: ComponentInstance } {
  const own = stateInterface(instance);
  if (own) return snapshotState(name, instance, own);
  let globals = '';
  const globalsKey = (image: { globals: { key: string; value: unknown }[] }) => image.globals.map((g) => `${g.key}=${String(g.value)}`).join(',');
  return {
    name,
    componentId: instance.component.id,
    instance,
    async capture(kind, chain, seq) {
      if (kind === 'key') {
        const image = instance.capture();
        globals = globalsKey(image);
        return encodeKeyframe(image, instance.initial, chain);
      }
      const delta = instance.checkpoint();
      const g = globalsKey(delta);
      if (deltaIsEmpty(delta) && g === globals) return null;
      globals = g;
      return encodeDelta(delta, chain, seq);
    },
    async restore(chain) {
      const image = decodeChain(chain, instance.initial);
      instance.restore(image);
      globals = globalsKey(image);
    },
  };
}

interface OwnState {
  snapshot(): unknown;
  restore(data: Uint8Array): unknown;
}

/** The `state` interface export (WIT: snapshot() -> list<u8>, restore(list<u8>) -> result<_, string>), if any. */
function stateInterface(instance: ComponentInstance): OwnState | undefined {
  const state = instance.exports.state as Partial<OwnState> | undefined;
  return typeof state?.snapshot === 'function' && typeof state.restore === 'function' ? (state as OwnState) : undefined;
}

function snapshotState(name: string, instance: ComponentInstance, own: OwnState): StatefulComponent & { instance: ComponentInstance } {
  const label = instance.component.manifest.name;
  let last: Uint8Array | undefined;
  const take = (): Uint8Array => {
    const data = own.snapshot();
    if (!(data instanceof Uint8Array)) throw new FerryError('component/bad-output', `Component "${label}" returned a state snapshot that is not bytes; fix the component.`);
    return data;
  };
  return {
    name,
    componentId: instance.component.id,
    instance,
    async capture(kind, chain, seq) {
      const data = take();
      if (kind === 'delta' && last && bytesEqual(data, last)) return null;
      last = data;
      return encodeSnapshot(instance.component.id, chain, seq, data);
    },
    async restore(chain) {
      const data = snapshotOf(chain);
      if (!data) throw new FerryError('runtime/bad-state', `The stored state of "${label}" is a memory image, but this build restores through its state interface; restore into the build that took it.`);
      try {
        own.restore(data);
      } catch (err) {
        throw new FerryError('runtime/bad-state', `Component "${label}" refused its own snapshot: ${resultError(err) ?? (err instanceof Error ? err.message : String(err))}.`, { cause: err });
      }
      last = data;
    },
  };
}

export interface ChainState {
  chain: string;
  seq: number;
  keyBytes: number;
  deltaBytes: number;
}

export interface CheckpointInput {
  events: Parameters<Session['append']>[0]['events'];
  host: HostState;
  llm?: LlmSettings;
  timeMs?: number;
  /** What the step cost, micro-dollars (0 or absent on free hardware). */
  costMicros?: number;
  /** Host-owned entries stored as they are (e.g. `kv/<engine>`, kv-handoff.ts): not component chains. */
  extra?: Record<string, Uint8Array | null>;
}

export interface CheckpointResult {
  id: ObjectId;
  /** Bytes of component state this checkpoint added (keyframes and deltas, before chunking). */
  stateBytes: number;
  keyframes: number;
}

/** Appends checkpoints for a set of stateful components; remembers each one's chain between steps. */
export class Checkpointer {
  readonly #chains = new Map<string, ChainState>();

  constructor(
    readonly session: Session,
    private components: readonly StatefulComponent[],
  ) {}

  /** Replaces the component set (after a restore into fresh instances); every chain restarts with a keyframe. */
  reset(components: readonly StatefulComponent[]): void {
    this.components = components;
    this.#chains.clear();
  }

  async append(input: CheckpointInput): Promise<CheckpointResult> {
    const blobs: Record<string, Uint8Array | null> = {};
    let stateBytes = 0;
    let keyframes = 0;
    for (const component of this.components) {
      const state = this.#chains.get(component.name);
      const needKey = !state || state.seq >= MAX_CHAIN || state.deltaBytes > KEYFRAME_RATIO * state.keyBytes;
      if (needKey) {
        const chain = `${component.name}@${crypto.randomUUID()}`;
        const key = (await component.capture('key', chain, 0))!;
        blobs[`${component.name}/key`] = key;
        blobs[`${component.name}/delta`] = null;
        this.#chains.set(component.name, { chain, seq: 0, keyBytes: key.length, deltaBytes: 0 });
        stateBytes += key.length;
        keyframes++;
      } else {
        const delta = await component.capture('delta', state.chain, state.seq + 1);
        if (delta === null) {
          blobs[`${component.name}/delta`] = null;
        } else {
          state.seq++;
          state.deltaBytes += delta.length;
          blobs[`${component.name}/delta`] = delta;
          stateBytes += delta.length;
        }
      }
    }
    Object.assign(blobs, input.extra);
    blobs[LOOP_COMPONENT] = encodeHostState(input.host);
    const id = await this.session.append({
      events: input.events,
      components: blobs,
      ...(input.llm ? { llm: input.llm } : {}),
      ...(input.timeMs === undefined ? {} : { timeMs: input.timeMs }),
      ...(input.costMicros === undefined ? {} : { costMicros: input.costMicros }),
    });
    return { id, stateBytes, keyframes };
  }

  /** Continues a component's chain where a restored checkpoint left it. */
  resume(name: string, state: ChainState): void {
    this.#chains.set(name, { ...state });
  }
}

/** Keyframes of every component: the state of a new session's first checkpoint. */
export async function keyframes(components: readonly StatefulComponent[]): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const component of components) out[`${component.name}/key`] = (await component.capture('key', `${component.name}@${crypto.randomUUID()}`, 0))!;
  return out;
}

export function encodeHostState(state: HostState): Uint8Array {
  return encodeCanonical({ v: 1, ...state });
}

const isIds = (x: unknown): boolean => Array.isArray(x) && x.every((id) => Number.isSafeInteger(id) && (id as number) >= 0);

/** A cut generation as a checkpoint stores it (loop.ts CutGeneration). */
function isCut(cut: unknown): boolean {
  if (typeof cut !== 'object' || cut === null) return false;
  const c = cut as Record<string, unknown>;
  const prompt = c.prompt as Record<string, unknown> | null;
  const promptOk = typeof prompt === 'object' && prompt !== null &&
    (typeof prompt.text === 'string' || isIds(prompt.tokens) ||
      (Array.isArray(prompt.messages) && prompt.messages.every((m: unknown) => typeof (m as { role?: unknown })?.role === 'string' && typeof (m as { content?: unknown }).content === 'string')));
  return promptOk && typeof c.tokenizerId === 'string' && isIds(c.tokens) && typeof c.text === 'string' &&
    Number.isSafeInteger(c.maxTokens) && typeof c.temperature === 'number' && Array.isArray(c.stop) && c.stop.every((x) => typeof x === 'string');
}

/** The held context as a checkpoint stores it (loop.ts HeldContext). */
function isHeld(value: unknown): value is HeldContext {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  return typeof h.tokenizerId === 'string' && h.tokenizerId !== '' && h.tokenizerId.length <= 256 && Array.isArray(h.keys) && h.keys.length <= MAX_WIRE_PREFIXES && h.keys.every((k) => typeof k === 'string' && k.length <= 32);
}

/** A compaction as a checkpoint stores it (llm/compaction.ts Compaction). */
function isCompaction(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const c = value as Record<string, unknown>;
  return Number.isSafeInteger(c.turns) && (c.turns as number) >= 1 && typeof c.digest === 'string' && /^[0-9a-f]{64}$/.test(c.digest) && typeof c.note === 'string' && c.note.length <= MAX_NOTE;
}

/** A compaction note is one sentence; anything longer is not one this host wrote. */
const MAX_NOTE = 1000;

export function decodeHostState(bytes: Uint8Array): HostState {
  const data = decodeMsgpack(bytes, 'runtime/bad-state', 'The loop state of a checkpoint') as Partial<HostState & { v: number }> | null;
  const loop = data?.loop;
  const ok =
    data?.v === 1 &&
    typeof data.agent === 'string' &&
    Array.isArray(data.tools) &&
    data.tools.every((t) => typeof t?.name === 'string' && typeof t.component === 'string') &&
    typeof loop === 'object' && loop !== null &&
    (loop.status === 'idle' || loop.status === 'running' || loop.status === 'done') &&
    Array.isArray(loop.pending) && loop.pending.every((e) => typeof e === 'object' && e !== null && typeof (e as { tag?: unknown }).tag === 'string') &&
    Number.isSafeInteger(loop.steps) && typeof loop.summary === 'string' &&
    (loop.cut === undefined || loop.cut === null || isCut(loop.cut)) &&
    (loop.compaction === undefined || loop.compaction === null || isCompaction(loop.compaction));
  if (!ok) throw new FerryError('runtime/bad-state', 'The loop state of a checkpoint is malformed; the checkpoint is damaged or from an incompatible version. Restore an earlier one.');
  const { cut, compaction, held, ...rest } = loop;
  // A placement hint only: a malformed one is dropped, never a reason to refuse the checkpoint.
  return { loop: { ...rest, ...(cut ? { cut } : {}), ...(compaction ? { compaction } : {}), ...(isHeld(held) ? { held } : {}) }, agent: data.agent!, tools: data.tools! };
}

/** The host state stored at checkpoint `at`. */
export async function readHostState(session: Session, at: ObjectId): Promise<HostState> {
  return decodeHostState(await session.component(at, LOOP_COMPONENT));
}

/**
 * A component's keyframe and the deltas after it, as of checkpoint `at`. Every checkpoint since the keyframe
 * names the same keyframe object, so it is read from `at`; the deltas are found walking back only until delta 1
 * (the newest delta's sequence number says how many there are), skipping repeats (fork markers copy their base's).
 * The blobs are read in two batches: the keyframe with the newest delta, then the other deltas.
 */
export async function readChain(session: Session, at: ObjectId, name: string): Promise<Uint8Array[]> {
  const keyName = `${name}/key`;
  const deltaName = `${name}/delta`;
  const keyList = (await session.checkpoint(at)).components[keyName];
  if (!keyList) throw new FerryError('session/no-component', `Checkpoint ${at} has no state for component "${name}".`);
  let key: Uint8Array | undefined;
  let newest: Uint8Array | undefined;
  /** Delta lists, newest first. */
  const lists: ObjectId[] = [];
  let expected = 0;
  for (let id: ObjectId | null = at; id !== null && (newest === undefined || lists.length < expected); ) {
    const checkpoint = await session.checkpoint(id);
    if (checkpoint.components[keyName] !== keyList) break;
    const list = checkpoint.components[deltaName];
    if (list && !lists.includes(list)) {
      if (newest === undefined) {
        [key, newest] = await session.imagesOf([keyList, list]);
        expected = blobHeader(newest!).seq;
      }
      lists.push(list);
    }
    id = checkpoint.parent;
  }
  if (newest === undefined) return session.imagesOf([keyList]);
  // Oldest first; decodeChain checks the order and that none is missing.
  const older = await session.imagesOf(lists.slice(1).reverse());
  return [key!, ...older, newest];
}

/** A component's image at checkpoint `at`; `base` is the component's fresh image (an instance's `initial`). */
export async function readImageAt(session: Session, at: ObjectId, name: string, base: StateImage): Promise<StateImage> {
  return decodeChain(await readChain(session, at, name), base);
}
