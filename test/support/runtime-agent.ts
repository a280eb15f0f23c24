/**
 * A real agent session for the runtime tests and benchmarks: the `scribe` agent with the `tally` and `spinner`
 * tools (test fixtures, QuickJS components) on node-llama-cpp with a tiny generated model, checkpointed into a
 * store. Shared by the tests, the child process that resumes a session, and the browser commands.
 */
import { hereChildren } from '../../src/core/parallel/children-here.ts';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createNodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';
import { componentId, enableComponentWasmFeatures, loadBuiltComponent } from '../../server/runtime/node-components.ts';
import type { Engine } from '../../src/core/llm/engine.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import type { LoadedComponent } from '../../src/core/runtime/index.ts';
import type { AgentRuntime, RuntimeEvent, RuntimeSetup } from '../../src/core/runtime/runtime.ts';
import { builtFixture } from './runtime-fixtures.ts';

type Name = 'scribe' | 'tally' | 'spinner' | 'journal';

export interface Fixtures {
  dirs: Record<Name, string>;
  ids: Record<Name, string>;
}

export async function fixtures(): Promise<Fixtures> {
  enableComponentWasmFeatures();
  const dirs = { scribe: await builtFixture('scribe'), tally: await builtFixture('tally'), spinner: await builtFixture('spinner'), journal: await builtFixture('journal') };
  const ids = { scribe: await componentId(dirs.scribe), tally: await componentId(dirs.tally), spinner: await componentId(dirs.spinner), journal: await componentId(dirs.journal) };
  return { dirs, ids };
}

/** Loads fixture components by id (each id is checked against its folder's files by loadComponent). */
export function loader(f: Fixtures): (id: string) => Promise<LoadedComponent> {
  const cache = new Map<string, Promise<LoadedComponent>>();
  return (id) => {
    const name = (Object.keys(f.ids) as (keyof Fixtures['ids'])[]).find((n) => f.ids[n] === id);
    if (!name) throw new Error(`no fixture component ${id}`);
    let loaded = cache.get(id);
    if (!loaded) cache.set(id, (loaded = loadBuiltComponent(f.dirs[name])));
    return loaded;
  };
}

/** The tiny generated model on disk (same bytes in every process). */
export async function tinyModelFile(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-runtime-model-'));
  const file = path.join(dir, 'tiny.gguf');
  await writeFile(file, generateTinyModel({ ctx: 4096 }));
  return file;
}

export async function tinyEngine(modelPath: string): Promise<Engine> {
  return createNodeLlamaEngine({ modelPath, gpu: false, threads: 1, slots: 1, contextSize: 4096 });
}

/** What most runtime tests start from: the built test components and an engine on a freshly generated tiny model. */
export async function agentRig(): Promise<{ f: Fixtures; engine: Engine }> {
  return { f: await fixtures(), engine: await tinyEngine(await tinyModelFile()) };
}

/** A runtime's setup on the fixtures, as a host makes one: forked children run here unless `extra` says otherwise. */
export function setupFor(f: Fixtures, engine: Engine, extra: Partial<RuntimeSetup> = {}): RuntimeSetup {
  return { engine, load: loader(f), sampling: { maxTokens: 8, temperature: 0, seed: 0 }, runChildren: hereChildren(() => {}), ...extra };
}

export { TURNS } from './runtime-turns.ts';

/** Runs one user turn (or the start) and returns what the user would see: replies, and failures. */
export async function turn(runtime: AgentRuntime, text: string, first = false, signal?: AbortSignal): Promise<{ replies: string[]; events: RuntimeEvent[] }> {
  const replies: string[] = [];
  const events: RuntimeEvent[] = [];
  for await (const event of runtime.run(first ? { type: 'start', task: text } : { type: 'user', text }, signal)) {
    events.push(event);
    if (event.type === 'reply') replies.push(event.text);
    if (event.type === 'step-failed') replies.push(`step failed: ${event.error.code}`);
  }
  return { replies, events };
}

export async function turns(runtime: AgentRuntime, texts: readonly string[], startIndex: number): Promise<string[]> {
  const out: string[] = [];
  for (const [i, text] of texts.entries()) out.push(...(await turn(runtime, text, startIndex + i === 0)).replies);
  return out;
}
