/**
 * Browser commands for the component runtime tests (they run in the Vitest process): hand the built `notes`
 * component's files to the browser, and run the notes workload in Node, optionally from an image the browser took.
 * Heavy modules load on first use, so the Vitest config stays quick to load.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BrowserCommand } from 'vitest/node';
import type { StateImageJson } from './state-image-json.ts';

export interface ComponentFilesJson {
  id: string;
  /** File name → base64 bytes: manifest.json, the glue and every core module. */
  files: Record<string, string>;
}

export interface NodeRun {
  pid: number;
  results: string[];
  image: StateImageJson;
}

const notesComponentFiles: BrowserCommand<[], ComponentFilesJson> = async () => {
  const [{ builtNotes }, { componentId }, { parseManifest, MANIFEST_FILE }, { toBase64 }] = await Promise.all([
    import('./components.ts'),
    import('../../server/runtime/node-components.ts'),
    import('../../src/core/runtime/index.ts'),
    import('./state-image-json.ts'),
  ]);
  const dir = await builtNotes();
  const manifest = parseManifest(await readFile(path.join(dir, MANIFEST_FILE)));
  const names = [MANIFEST_FILE, manifest.glue.file, ...manifest.coreModules.map((m) => m.file)];
  const files = Object.fromEntries(await Promise.all(names.map(async (f) => [f, toBase64(await readFile(path.join(dir, f)))] as const)));
  return { id: await componentId(dir), files };
};

/** Runs notes calls [from, to) in Node — in a fresh instance, or restored from `image` — and captures the result. */
const notesRunInNode: BrowserCommand<[from: number, to: number, image?: StateImageJson], NodeRun> = async (_ctx, from, to, image) => {
  const [{ builtNotes }, { loadBuiltComponent }, { instantiate }, workload, json] = await Promise.all([
    import('./components.ts'),
    import('../../server/runtime/node-components.ts'),
    import('../../src/core/runtime/index.ts'),
    import('./notes-workload.ts'),
    import('./state-image-json.ts'),
  ]);
  const instance = await instantiate(await loadBuiltComponent(await builtNotes()), {});
  if (image) instance.restore(json.imageFromJson(image));
  const results = workload.runCalls(workload.invokeOf(instance.exports), workload.notesCalls(from, to));
  return { pid: process.pid, results, image: json.imageToJson(instance.capture()) };
};

/** A component built into components/dist (an agent or tool of the app) by its name, for a page to load. */
const builtComponentFiles: BrowserCommand<[name: string], ComponentFilesJson> = async (_ctx, name) => {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`not a component name: ${name}`);
  const [{ componentId }, { componentFiles }, { toBase64 }] = await Promise.all([
    import('../../server/runtime/node-components.ts'),
    import('../../server/runtime/node-tools.ts'),
    import('./state-image-json.ts'),
  ]);
  const dir = path.join(import.meta.dirname, '..', '..', 'components', 'dist', name);
  const files = Object.fromEntries(Object.entries(await componentFiles(dir)).map(([f, bytes]) => [f, toBase64(bytes)]));
  return { id: await componentId(dir), files };
};

export interface AgentFixturesJson {
  ids: { scribe: string; tally: string };
  /** Component id → file name → base64 bytes. */
  files: Record<string, Record<string, string>>;
}

/** The `scribe` agent and `tally` tool builds, for the browser's agent worker. */
const agentComponentFiles: BrowserCommand<[], AgentFixturesJson> = async () => {
  const [{ fixtures }, { componentFiles }, { toBase64 }] = await Promise.all([
    import('./runtime-agent.ts'),
    import('../../server/runtime/node-tools.ts'),
    import('./state-image-json.ts'),
  ]);
  const f = await fixtures();
  const files: AgentFixturesJson['files'] = {};
  for (const name of ['scribe', 'tally'] as const) {
    files[f.ids[name]] = Object.fromEntries(Object.entries(await componentFiles(f.dirs[name])).map(([k, v]) => [k, toBase64(v)]));
  }
  return { ids: { scribe: f.ids.scribe, tally: f.ids.tally }, files };
};

export interface AgentNodeRun {
  pid: number;
  replies: string[];
  /** The session exported after the run (.ferry, base64). */
  file: string;
}

/**
 * Plays `turns` (the first is the task when `from` is 0) with the real runtime in Node — node-llama-cpp, the tiny
 * model — in a new session, or in the session imported from `file`; returns the replies and the session.
 */
const agentRunInNode: BrowserCommand<[turns: string[], from: number, file?: string], AgentNodeRun> = async (_ctx, turnTexts, from, file) => {
  const [agent, { AgentRuntime }, { createMemoryStore }, { exportSession, importSession }, json] = await Promise.all([
    import('./runtime-agent.ts'),
    import('../../src/core/runtime/runtime.ts'),
    import('../../src/core/store/index.ts'),
    import('../../src/core/snapshot/index.ts'),
    import('./state-image-json.ts'),
  ]);
  const f = await agent.fixtures();
  const engine = await agent.tinyEngine(await agent.tinyModelFile());
  try {
    const store = createMemoryStore();
    const setup = agent.setupFor(f, engine);
    const runtime = file
      ? await AgentRuntime.open(store, setup, await importSession(store, json.fromBase64(file)))
      : await AgentRuntime.create(store, setup, { agent: f.ids.scribe, tools: [f.ids.tally] });
    const replies = await agent.turns(runtime, turnTexts, from);
    await runtime.dispose();
    return { pid: process.pid, replies, file: json.toBase64(await exportSession(store, runtime.session.id)) };
  } finally {
    await engine.dispose();
  }
};

export const runtimeCommands = { notesComponentFiles, notesRunInNode, builtComponentFiles, agentComponentFiles, agentRunInNode };

declare module 'vitest/browser' {
  interface BrowserCommands {
    notesComponentFiles: () => Promise<ComponentFilesJson>;
    notesRunInNode: (from: number, to: number, image?: StateImageJson) => Promise<NodeRun>;
    builtComponentFiles: (name: string) => Promise<ComponentFilesJson>;
    agentComponentFiles: () => Promise<AgentFixturesJson>;
    agentRunInNode: (turns: string[], from: number, file?: string) => Promise<AgentNodeRun>;
  }
}
