/**
 * Detachable entries in the session graph. A checkpoint may carry an engine's saved KV cache as a component named
 * `kv/<KV format>` (runtime/kv-handoff.ts; llm/kv-state.ts kvFormatOf: engines of one format load each other's). It is a cache, never the truth — the transcript's token ids are — so
 * its subtree is detachable: a store may hold the checkpoint without it (a device that cannot use another engine's
 * KV never downloads it), every walk of the graph tolerates its absence, and whoever wants it and finds it missing
 * re-prefills. A checkpoint also carries the component builds the session runs, as `build/<component id>`
 * (runtime/builds.ts): detachable too, since a host that ships the build has its bytes already. A detachable
 * subtree that is present is complete, like any other: its chunk list comes with all its pages.
 */
import { decodeObject, childrenOf, type ObjectKind } from '../session/index.ts';
import type { ObjectId } from '../store/index.ts';

export const KV_PREFIX = 'kv/';

/** Where the KV of a format lives in a checkpoint: 'node-llama-cpp', 'llama.cpp@de3ff815ea7d' (kvFormatOf). */
export function kvComponentName(format: string): string {
  return `${KV_PREFIX}${format.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120)}`;
}

export const isKvComponent = (name: string): boolean => name.startsWith(KV_PREFIX);

export const BUILD_PREFIX = 'build/';

/** Where a checkpoint carries the build with this id (a component id: the SHA-256 of its manifest). */
export const buildComponentName = (componentId: string): string => `${BUILD_PREFIX}${componentId}`;

export const isBuildComponent = (name: string): boolean => name.startsWith(BUILD_PREFIX);

/**
 * Which detachable entries a walk follows, asked per entry: its component name, and whether its checkpoint is the
 * tip of a ref (the only place a resume loads KV from).
 */
export type KvSelection = (component: string, atTip: boolean) => boolean;

export const everyKv: KvSelection = () => true;

/**
 * What a fetcher whose engine loads KV format `engine` can use: that format's entries at the tips of the refs. null: none at all (a
 * host that does not load KV); undefined: every entry (a full copy, as an export needs).
 */
export function kvFor(engine: string | null | undefined): KvSelection {
  if (engine === undefined) return everyKv;
  if (engine === null) return () => false;
  const own = kvComponentName(engine);
  return (component, atTip) => atTip && component === own;
}

/**
 * What a fetcher wants: KV entries as `kvFor(engine)` says, and every build it does not have (`hasBuild`; absent:
 * every build, as a device keeping a whole copy wants).
 */
export function detachablesFor(engine: string | null | undefined, hasBuild?: (componentId: string) => boolean): KvSelection {
  const kv = kvFor(engine);
  return (component, atTip) => (isBuildComponent(component) ? !hasBuild?.(component.slice(BUILD_PREFIX.length)) : kv(component, atTip));
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
  const out: Edge[] = Object.entries(cp.components).map(([name, id]) => (isKvComponent(name) || isBuildComponent(name) ? { id, kind: 'chunks' as const, kv: name } : { id, kind: 'chunks' as const }));
  if (cp.parent !== null) out.push({ id: cp.parent, kind: 'checkpoint' });
  return out;
}
