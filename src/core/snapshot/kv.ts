/**
 * KV entries in the session graph (issue 6). A checkpoint may carry an engine's saved KV cache as a component named
 * `kv/<engine id>` (runtime/kv-handoff.ts). It is a cache, never the truth — the transcript's token ids are — so
 * its subtree is detachable: a store may hold the checkpoint without it (a device that cannot use another engine's
 * KV never downloads it), every walk of the graph tolerates its absence, and whoever wants it and finds it missing
 * re-prefills. A KV subtree that is present is complete, like any other: its chunk list comes with all its pages.
 */
import { decodeObject, childrenOf, type ObjectKind } from '../session/index.ts';
import type { ObjectId } from '../store/index.ts';

export const KV_PREFIX = 'kv/';

/** Where the KV of an engine lives in a checkpoint. Engine ids are plain adapter names ('node-llama-cpp'). */
export function kvComponentName(engineId: string): string {
  return `${KV_PREFIX}${engineId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120)}`;
}

export const isKvComponent = (name: string): boolean => name.startsWith(KV_PREFIX);

/**
 * Which KV entries a walk follows, asked per entry: its component name, and whether its checkpoint is the tip of a
 * ref (the only place a resume loads KV from).
 */
export type KvSelection = (component: string, atTip: boolean) => boolean;

export const everyKv: KvSelection = () => true;

/**
 * What a fetcher that runs `engine` can use: that engine's entries at the tips of the refs. null: none at all (a
 * host that does not load KV); undefined: every entry (a full copy, as an export needs).
 */
export function kvFor(engine: string | null | undefined): KvSelection {
  if (engine === undefined) return everyKv;
  if (engine === null) return () => false;
  const own = kvComponentName(engine);
  return (component, atTip) => atTip && component === own;
}

/** One edge of the session graph; `kv` names the component when it leads into a (detachable) KV entry. */
export interface Edge {
  id: ObjectId;
  kind: ObjectKind;
  kv?: string;
}

/** The objects `bytes` (an object of `kind`) refers to, validating it as that kind, with KV entries marked. */
export function edgesOf(kind: ObjectKind, bytes: Uint8Array): Edge[] {
  if (kind !== 'checkpoint') return childrenOf(kind, bytes);
  const cp = decodeObject('checkpoint', bytes);
  const out: Edge[] = Object.entries(cp.components).map(([name, id]) => (isKvComponent(name) ? { id, kind: 'chunks' as const, kv: name } : { id, kind: 'chunks' as const }));
  if (cp.parent !== null) out.push({ id: cp.parent, kind: 'checkpoint' });
  return out;
}
