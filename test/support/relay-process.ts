import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A `ferry` command in a child process. */
interface CliProcess {
  child: ChildProcess;
  /** Everything it printed, for failure messages. */
  output(): string;
  /** Resolves when it has exited. */
  exited: Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

export interface RelayProcess extends CliProcess {
  url: string;
}

export interface WorkerProcess extends CliProcess {
  name: string;
  /** The id the relay gave it. */
  id: string;
}

/**
 * Runs `ferry <args>` from the project's sources and resolves, with the match, once its output matches `ready`.
 * Rejects with its output if it exits first or stays silent for `timeoutMs`.
 */
function startCli(args: string[], ready: RegExp, what: string, timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<CliProcess & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', ...args], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env: { ...process.env, ...env } } : {}) });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`${what} was not ready within ${timeoutMs} ms. Its output:\n${log}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      const match = ready.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve({ child, output: () => log, exited, stop, match });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (code ${code}, signal ${signal}) before it was ready. Its output:\n${log}`));
    });
  });
}

/**
 * Starts `ferry start` in a child process, exactly as `npm start` does after building, on a free port (unless
 * `args` name one), and resolves once it prints the URL it serves (http:// or, with TLS, https://). `env` adds to
 * the environment it inherits.
 */
export async function startRelayProcess(args: string[], { timeoutMs = 60_000, command = 'start', env }: { timeoutMs?: number; command?: 'start' | 'relay'; env?: NodeJS.ProcessEnv } = {}): Promise<RelayProcess> {
  const port = args.includes('--port') ? [] : ['--port', '0'];
  const { match, ...proc } = await startCli([command, ...port, '--log-level', 'warn', ...args], /Ferry is running at (https?:\/\/\S+)/, 'The relay', timeoutMs, env);
  return { ...proc, url: match[1]! };
}

export interface WorkerProcessOptions {
  relayUrl: string;
  token: string;
  name: string;
  model: string;
  dataDir: string;
  componentsDir: string;
  /** More `ferry worker` flags (e.g. --cpu-share). */
  args?: string[];
  timeoutMs?: number;
}

/** Starts `ferry worker` with one slot and resolves once it says it is attached, with the id the relay gave it. */
export async function startWorkerProcess(o: WorkerProcessOptions): Promise<WorkerProcess> {
  const args = ['worker', '--relay', o.relayUrl, '--worker-token', o.token, '--model', o.model, '--data', o.dataDir, '--components', o.componentsDir, '--name', o.name, '--slots', '1', ...(o.args ?? [])];
  const { match, ...proc } = await startCli(args, /Ferry worker \S+ attached to \S+ as ([0-9a-f]{16})/, `Worker ${o.name}`, o.timeoutMs ?? 60_000);
  return { ...proc, name: o.name, id: match[1]! };
}
