/**
 * Tools in their own worker, so a call can be stopped: a tool that runs past its time limit is terminated with
 * its worker (a wasm loop cannot be interrupted from inside its thread). The runtime then restores the session
 * from its last checkpoint into fresh workers (runtime.ts), so nothing acknowledged is lost.
 *
 * `toolWorkerApi()` is what a worker exposes (workers/tool.worker.ts in the browser, server/runtime/tool-worker.ts
 * in Node worker_threads); `isolatedTool()` is the host side. Errors cross as data (SerializedError), not as
 * thrown values, so their codes survive, and every pending call settles when the worker dies.
 */
import { wrap, type Endpoint, type Remote } from 'comlink';
import { FerryError, type SerializedError } from '../errors.ts';
import { instanceState } from './checkpoint.ts';
import { instantiate, type ComponentInstance } from './instance.ts';
import { loadComponent, type ComponentFiles } from './load.ts';
import type { ToolOutcome } from './loop.ts';
import type { ToolSlot } from './runtime.ts';
import { invokeTool, toolLimits, type ToolLimits } from './tools.ts';
import { toolExportsOf, type ToolInfo } from './wit.ts';

export type { ComponentFiles };

type Result<T> = { ok: T } | { error: SerializedError };

export interface ToolWorkerApi {
  /** Loads and starts the tool under its declared limits, lowered to `host`'s; answers with them. */
  start(componentId: string, files: ComponentFiles, host: Partial<ToolLimits>): Promise<Result<{ info: ToolInfo; limits: ToolLimits }>>;
  invoke(args: string): Promise<Result<ToolOutcome>>;
  capture(kind: 'key' | 'delta', chain: string, seq: number): Promise<Result<Uint8Array | null>>;
  restore(chain: Uint8Array[]): Promise<Result<null>>;
}

/** The worker side: one tool component instance. */
export function toolWorkerApi(): ToolWorkerApi {
  let tool: { instance: ComponentInstance; info: ToolInfo; limits: ToolLimits; state: ReturnType<typeof instanceState> } | undefined;
  const started = () => {
    if (!tool) throw new FerryError('runtime/not-started', 'The tool worker has no tool yet; call start() first.');
    return tool;
  };
  return {
    start: (componentId, files, host) =>
      settle(async () => {
        const component = await loadComponent(componentId, {
          read: async (file) => {
            const bytes = files[file];
            if (!bytes) throw new FerryError('component/missing-file', `The tool worker was not given ${file} of component ${componentId}.`);
            return bytes;
          },
        }, host.memoryBytes === undefined ? {} : { maxMemoryBytes: host.memoryBytes });
        const limits = toolLimits(component.manifest, host);
        // Host imports are functions and cannot cross into the worker: an isolated tool is granted nothing.
        const instance = await instantiate(component, {});
        const info = toolExportsOf(instance).describe();
        const state = instanceState(`tool.${info.name}`, instance);
        // The worker is fresh, so the restore code has never run in it: a resume that restores into it would run that
        // code cold (about 3x slower). Putting the instance into its own state runs it once here, off that path.
        await state.restore([(await state.capture('key', 'warm-up', 0))!]);
        tool = { instance, info, limits, state };
        return { info, limits };
      }),
    invoke: (args) => settle(async () => {
      const t = started();
      return invokeTool(t.instance, t.info, args, t.limits);
    }),
    capture: (kind, chain, seq) => settle(() => started().state.capture(kind, chain, seq)),
    restore: (chain) => settle(async () => {
      await started().state.restore(chain);
      return null;
    }),
  };
}

/** A worker as the host sees it: a message endpoint, a way to kill it, and word when it dies. */
export interface WorkerHandle {
  endpoint: Endpoint;
  terminate(): void;
  /** Called once if the worker exits or fails on its own. */
  onExit(listener: (why: string) => void): void;
}

export interface IsolatedToolOptions {
  spawn: () => WorkerHandle;
  componentId: string;
  files: ComponentFiles;
  /** Lower limits than the tool declares (a host holding its tools to less); never raises them. */
  limits?: Partial<ToolLimits>;
}

/** How long a tool may take to load and start in its worker (compiling its modules), whatever its call limit. */
const START_LIMIT_MS = 60_000;

/** Starts a tool in a fresh worker, under the limits it declares (lowered to the host's); its calls are time-limited. */
export async function isolatedTool(options: IsolatedToolOptions): Promise<ToolSlot> {
  const worker = options.spawn();
  const remote: Remote<ToolWorkerApi> = wrap<ToolWorkerApi>(worker.endpoint);
  let dead: FerryError | undefined;
  const waiting = new Set<(err: FerryError) => void>();
  const kill = (err: FerryError) => {
    if (dead) return;
    dead = err;
    worker.terminate();
    for (const reject of waiting) reject(err);
    waiting.clear();
  };
  worker.onExit((why) => kill(new FerryError('runtime/tool-worker-died', `The worker running tool ${options.componentId} stopped (${why}).`)));

  /** Every call settles: with its result, its error, the worker's death, or (for invoke) the time limit. */
  const call = <T>(run: () => Promise<Result<T>>, timeoutMs?: number, onTimeout?: () => FerryError): Promise<T> => {
    if (dead) return Promise.reject(dead);
    return new Promise<T>((resolve, reject) => {
      const fail = (err: FerryError) => {
        clearTimeout(timer);
        waiting.delete(fail);
        reject(err);
      };
      waiting.add(fail);
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => kill(onTimeout!()), timeoutMs);
      run().then(
        (result) => {
          clearTimeout(timer);
          waiting.delete(fail);
          if ('error' in result) reject(FerryError.fromJSON(result.error));
          else resolve(result.ok);
        },
        (err: unknown) => fail(err instanceof FerryError ? err : new FerryError('runtime/tool-worker-died', `The tool worker failed: ${err instanceof Error ? err.message : String(err)}.`, { cause: err })),
      );
    });
  };

  const { info, limits } = await call(() => remote.start(options.componentId, options.files, options.limits ?? {}), START_LIMIT_MS, () =>
    new FerryError('runtime/tool-start-timeout', `Tool ${options.componentId} did not start within ${START_LIMIT_MS} ms.`));
  const name = `tool.${info.name}`;
  return {
    info,
    name,
    componentId: options.componentId,
    invoke: (args) =>
      call(() => remote.invoke(args), limits.timeMs, () =>
        new FerryError('runtime/tool-time-limit', `Tool "${info.name}" ran past its time limit of ${limits.timeMs} ms and was stopped; the session is restored to its last checkpoint.`, {
          details: { tool: info.name, limitMs: limits.timeMs },
        })),
    capture: (kind, chain, seq) => call(() => remote.capture(kind, chain, seq)),
    restore: async (chain) => {
      await call(() => remote.restore([...chain]));
    },
    dispose: async () => {
      kill(new FerryError('runtime/tool-disposed', `Tool "${info.name}" was shut down.`));
    },
  };
}

async function settle<T>(run: () => T | Promise<T>): Promise<Result<T>> {
  try {
    return { ok: await run() };
  } catch (err) {
    const ferry = err instanceof FerryError ? err : new FerryError('runtime/tool-failed', err instanceof Error ? err.message : String(err), { cause: err });
    return { error: ferry.toJSON() };
  }
}
