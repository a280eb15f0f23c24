/**
 * The rig for the context-parallel tests and bench: a relay with its embedded cloud worker on the tiny generated
 * model, and device nodes in this process that offer themselves in one space the way a browser does (NodeLink +
 * RunHost on a real node-llama-cpp engine) — each can be killed by cutting its socket, as a closed tab or a lost
 * network would.
 */
import path from 'node:path';
import WebSocket from 'ws';
import * as v from 'valibot';
import { buildComponents } from '../../../scripts/components/build.ts';
import { openComponentLibrary, type ComponentLibrary } from '../../../server/relay/component-library.ts';
import { enableComponentWasmFeatures } from '../../../server/runtime/node-components.ts';
import type { Engine } from '../../../src/core/llm/engine.ts';
import { NodeLink, type LinkSocket, type LinkState } from '../../../src/core/host/node-link.ts';
import { measureProfile } from '../../../src/core/host/measure-profile.ts';
import { RunHost } from '../../../src/core/host/run-host.ts';
import { relayChildren, type StreamSocket } from '../../../src/core/parallel/index.ts';
import type { ChildProgress } from '../../../src/core/runtime/index.ts';
import type { RuntimeSetup } from '../../../src/core/runtime/runtime.ts';
import type { Store } from '../../../src/core/store/index.ts';
import { SPACE_HEADER, WorkerListSchema, createWorkerKeys, workerPaths, type SpaceCredentials, type WorkerList } from '../../../src/core/protocol/index.ts';
import { tinyEngine } from '../../support/runtime-agent.ts';

const root = path.resolve(import.meta.dirname, '..', '..', '..');
export const componentsDir = path.join(root, 'components', 'dist');

/** The survey agent and its tools, built when their sources changed, and a library that loads them by id. */
export async function surveyComponents(): Promise<{ library: ComponentLibrary; survey: string; docs: string; notes: string }> {
  enableComponentWasmFeatures();
  const names = ['survey', 'docs', 'notes'];
  await buildComponents({ srcDir: path.join(root, 'components'), outDir: componentsDir, witDir: path.join(root, 'components', 'wit'), names });
  const library = await openComponentLibrary([componentsDir]);
  const idOf = (name: string): string => {
    const found = [...library.ids].find(([, dir]) => path.basename(dir) === name);
    if (!found) throw new Error(`no built component ${name} in ${componentsDir}`);
    return found[0];
  };
  return { library, survey: idOf('survey'), docs: idOf('docs'), notes: idOf('notes') };
}

/** How the tests follow child runs: Node 20 has no global WebSocket. */
export const openSocket = (url: string, protocols?: string[]): StreamSocket => new WebSocket(url, protocols) as unknown as StreamSocket;

/** A survey parent's setup in this process whose children run on `space`'s nodes and the relay's cloud workers. */
export function surveyParentSetup(opts: {
  engine: Engine;
  library: ComponentLibrary;
  relayUrl: string;
  space: string;
  sampling: NonNullable<RuntimeSetup['sampling']>;
  store?: Store;
  /** May the relay's cloud workers take children? Default true. */
  cloud?: boolean;
  onProgress(progress: ChildProgress): void;
}): RuntimeSetup {
  const { engine, sampling } = opts;
  const load = (id: string) => opts.library.load(id);
  return {
    engine,
    load,
    sampling,
    runChildren: relayChildren({
      relayUrl: opts.relayUrl,
      space: opts.space,
      cloud: opts.cloud ?? true,
      setup: { engine, load, sampling },
      openSocket,
      ...(opts.store ? { store: opts.store } : {}),
      onProgress: (p) => opts.onProgress(p),
    }),
  };
}

export interface DeviceNode {
  readonly name: string;
  readonly id: string;
  readonly engine: Engine;
  /** Every count of its runs it reported (NodeLink's onRuns), in order. */
  readonly runs: number[];
  /** Cuts its socket without a goodbye (a closed tab, a lost network); it does not come back. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

/** A device node of `space` in this process (it proves membership), attached to the relay with its measured profile. */
export async function startDeviceNode(relayUrl: string, space: SpaceCredentials, name: string, modelPath: string, library: ComponentLibrary): Promise<DeviceNode> {
  const engine = await tinyEngine(modelPath);
  const host = new RunHost({ engine, keys: await createWorkerKeys(), load: (id) => library.load(id), relayUrl: () => relayUrl });
  const profile = await measureProfile(engine, { name, slots: 1 });
  let socket: WebSocket | undefined;
  const states: ((s: LinkState) => void)[] = [];
  const runs: number[] = [];
  const link = new NodeLink({
    relayUrl,
    host,
    profile,
    space,
    open: (url) => (socket = new WebSocket(url)) as unknown as LinkSocket,
    log: () => undefined,
    onRuns: (n) => void runs.push(n),
    onState: (s) => {
      for (const w of states) w(s);
    },
  });
  const id = await link.start((err) => console.error(`device node ${name}: ${err.message}`));
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await link.close();
    await engine.dispose();
  };
  return {
    name,
    id,
    engine,
    runs,
    async kill() {
      const disconnected = new Promise<void>((resolve) => states.push((s) => s === 'disconnected' && resolve()));
      socket!.terminate();
      await disconnected;
      // After the link has scheduled its reconnect (which close() then cancels): this node is gone for good.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await close();
    },
    close,
  };
}

export async function listSpace(relayUrl: string, space: string): Promise<WorkerList['workers']> {
  const res = await fetch(relayUrl + workerPaths.list, { headers: { [SPACE_HEADER]: space } });
  return v.parse(WorkerListSchema, await res.json()).workers;
}

/** Waits until the relay lists `count` nodes to `space` (the embedded worker attaches once its model is loaded). */
export async function waitForNodes(relayUrl: string, space: string, count: number, timeoutMs = 60_000): Promise<WorkerList['workers']> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const workers = await listSpace(relayUrl, space);
    if (workers.length >= count) return workers;
    if (Date.now() > until) throw new Error(`the relay lists ${workers.length} node(s) to the space, expected ${count}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Twelve (or `count`) generated sources for a survey: distinct, deterministic, a few sentences each. */
export function generatedSources(count: number): { title: string; authors: string[]; year: number; text: string }[] {
  const topics = ['ferries', 'tides', 'harbours', 'lighthouses', 'canals', 'locks', 'barges', 'sails', 'charts', 'buoys', 'piers', 'currents', 'knots', 'anchors'];
  return Array.from({ length: count }, (_, i) => {
    const a = topics[i % topics.length]!;
    const b = topics[(i * 5 + 3) % topics.length]!;
    return {
      title: `On ${a} and ${b} (${i + 1})`,
      authors: [`Author ${String.fromCharCode(65 + i)}`],
      year: 1990 + i,
      text: `Study ${i + 1} measures how ${a} affect ${b}. It reports ${i + 2} findings from ${10 * (i + 1)} observations. The effect of ${a} on ${b} is strongest in winter. Its sample is small.`,
    };
  });
}
