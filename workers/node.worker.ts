/**
 * The node worker: this browser offering itself as a node of its space (DESIGN §7 "devices as nodes"). It loads the
 * device's model into its own wllama engine, measures its speed with a short real generation, attaches to the relay
 * over the node link with that profile, proving membership of its space, and runs what the relay assigns it on a RunHost — the same
 * code as a cloud worker: fetch the snapshot, continue the session, publish every checkpoint. Tools run in nested
 * tool workers, as in the agent worker. Reached from the page through comlink (src/browser/device-node.ts).
 */
import { expose } from 'comlink';
import { FerryError, isFerryError, type SerializedError } from '../src/core/errors.ts';
import { cpuShare } from '../src/core/llm/cpu-share.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { NodeLink, type LinkState } from '../src/core/host/node-link.ts';
import { measureProfile } from '../src/core/host/measure-profile.ts';
import { RunHost } from '../src/core/host/run-host.ts';
import { loadComponent, type LoadedComponent } from '../src/core/runtime/load.ts';
import { isolatedTool, type ComponentFiles } from '../src/core/runtime/tool-worker.ts';
import { RelayHttp, createWorkerKeys, spaceCredentials, type WorkerProfile } from '../src/core/protocol/index.ts';
import { withRelayBuilds } from '../src/core/host/relay-builds.ts';
import { openBrowserEngine } from '../src/browser/llm/open-engine.ts';
import type { CpuEngineOptions } from '../src/browser/llm/cpu-open.ts';
import { spawnToolWorker } from './spawn-tool-worker.ts';

export interface NodeStartOptions {
  relayUrl: string;
  /** The space secret: the node proves membership with the key derived from it (it never reaches the relay). */
  spaceSecret: string;
  name: string;
  /** `gpu`: start on the GPU (llama.cpp's WebGPU backend), the CPU engine taking over on load or mid-run if it fails. */
  engine: CpuEngineOptions & { gpu?: boolean };
  /** Every component build this device has, by id (a run names its components by id). */
  components: Record<string, ComponentFiles>;
  /** The share of a CPU the node's engine may use, in (0, 1]; default all of it. */
  cpuShare?: number;
}

export interface NodeStatus {
  state: LinkState;
  detail?: string;
  /** The relay's id for this node, once attached. */
  id?: string;
  profile?: WorkerProfile;
  /** Runs in progress here. */
  runs: number;
}

let current: { link: NodeLink; host: RunHost; engine: Engine } | undefined;
/** Kept across restarts, so a cap set while stopped holds when the node starts again. */
const share = cpuShare();
/** The largest KV state a device node hands back with a session (a relay's worker: 256 MiB, kv-handoff.ts). */
const DEVICE_KV_BYTES = 16 << 20;

async function stop(): Promise<void> {
  const node = current;
  current = undefined;
  if (!node) return;
  await node.link.close();
  await node.engine.dispose();
}

function openEngine({ gpu, ...cpu }: NodeStartOptions['engine']): Promise<Engine> {
  const wllama = { kind: 'wllama', ...cpu } as const;
  return openBrowserEngine(gpu ? { kind: 'wllama-webgpu', fallback: wllama } : wllama, { share, onSwitch: (change) => console.info(`ferry node: ${change.message}`) });
}

const api = {
  /** Starts offering; resolves once the relay has welcomed the node (or with the reason it could not). */
  async start(options: NodeStartOptions, onStatus: (status: NodeStatus) => void): Promise<{ ok: NodeStatus } | { error: SerializedError }> {
    try {
      await stop();
      if (options.cpuShare !== undefined) share.set(options.cpuShare);
      const engine = await openEngine(options.engine);
      const loaded = new Map<string, Promise<LoadedComponent>>();
      const own = (id: string): Promise<LoadedComponent> => {
        const files = options.components[id];
        if (!files) return Promise.reject(new FerryError('runtime/missing-component', `This device has no component ${id.slice(0, 16)}…; the session was made with another build of Ferry. Update the app on both devices.`));
        let p = loaded.get(id);
        if (!p) loaded.set(id, (p = loadComponent(id, { read: async (file) => files[file] ?? new Uint8Array() })));
        return p;
      };
      const profile = await measureProfile(engine, { name: options.name, slots: 1 });
      const host: RunHost = new RunHost({
        engine,
        keys: await createWorkerKeys(),
        // A build this app does not ship comes from the relay's library, verified against its id.
        load: withRelayBuilds(own, new RelayHttp({ baseUrl: options.relayUrl })),
        hasBuild: (id) => id in options.components,
        startTool: (component) => isolatedTool({ spawn: spawnToolWorker, componentId: component.id, files: component.files }),
        relayUrl: () => options.relayUrl,
        // A device's uplink is no data centre's: a KV state goes up with the session only while it stays small.
        kv: { prefillTps: profile.prefillTps, maxBytes: DEVICE_KV_BYTES },
        self: () => link.id,
      });
      let status: NodeStatus = { state: 'connecting', profile, runs: 0 };
      const report = (patch: Partial<NodeStatus>): void => {
        status = { ...status, ...patch };
        onStatus(status);
      };
      const link: NodeLink = new NodeLink({
        relayUrl: options.relayUrl,
        host,
        profile,
        space: await spaceCredentials(options.spaceSecret),
        open: (url) => new WebSocket(url),
        log: (message, details) => console.info(`ferry node: ${message}`, details ?? ''),
        // The link's count: the host's drops a run only after the run has reported its end.
        onRuns: (runs) => report({ runs }),
        onState: (state, detail) => report({ state, ...(detail ? { detail } : {}), ...(link.id ? { id: link.id } : {}) }),
      });
      current = { link, host, engine };
      const id = await link.start((err) => report({ state: 'closed', detail: err.message }));
      report({ state: 'connected', id });
      return { ok: status };
    } catch (err) {
      await stop().catch(() => undefined);
      const ferry = isFerryError(err) ? err : new FerryError('node/start-failed', `This device could not start as a node: ${err instanceof Error ? err.message : String(err)}.`, { cause: err });
      return { error: ferry.toJSON() };
    }
  },
  /** Stops offering: runs in progress are checkpointed and published (the relay moves them on), then it detaches. */
  stop,
  /** Caps the node's engine at `fraction` of a CPU from its next token on (its measured profile stays as attached). */
  setCpuShare(fraction: number): void {
    share.set(fraction);
  },
};

export type NodeWorkerApi = typeof api;
expose(api);
