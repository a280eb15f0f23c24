import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RelayProcess {
  url: string;
  child: ChildProcess;
  /** Everything the relay printed, for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `ferry start` in a child process, exactly as `npm start` does after building, on a free port, and
 * resolves once it prints the URL it serves. Rejects with its output if it exits or stays silent too long.
 */
export function startRelayProcess(args: string[], { timeoutMs = 60_000 } = {}): Promise<RelayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', 'start', '--port', '0', '--log-level', 'warn', ...args], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`The relay did not start within ${timeoutMs} ms. Its output:\n${log}`));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      const match = /Ferry is running at (http:\/\/\S+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1]!, child, output: () => log, stop });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`The relay exited (code ${code}, signal ${signal}) before it was ready. Its output:\n${log}`));
    });
  });
}
