/**
 * A throwaway PostgreSQL server for one test file or bench: Debian's binaries (installed by ensure-postgres.sh,
 * which `npm test` runs), a fresh cluster in a temp folder, on a free loopback port, as an unprivileged user when
 * run as root (initdb refuses root). Stopped, restarted or killed on demand for the fault tests; removed at the end.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, waitUntil } from './ports.ts';

export interface PostgresServer {
  /** The cluster's folder (its tables and write-ahead log). */
  dir: string;
  /** postgres://… of `database` (default "ferry", created at start). */
  url(database?: string): string;
  /** A new empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** Fast shutdown (in-flight transactions roll back); resolves once the server has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same folder and port. */
  start(): Promise<void>;
  /** Stops it and removes its folder. */
  destroy(): Promise<void>;
}

function binDir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions[0]) return path.join(root, versions[0], 'bin');
  throw new Error('PostgreSQL is not installed: run `bash test/support/ensure-postgres.sh` (npm test does), or set PG_BINDIR to the folder holding initdb.');
}

/** Who the server runs as: ourselves, or — as root — Debian's `postgres` user. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const uid = id('-u');
  if (!Number.isInteger(uid) || uid <= 0) throw new Error('Running as root, the test Postgres needs an unprivileged user "postgres" (Debian\'s postgresql package makes one).');
  return { uid, gid: id('-g') };
}

/**
 * Starts a cluster. `durable: false` (tests) turns off fsync for speed; benchmarks keep it on, so a commit costs
 * what it costs in production.
 */
export async function startPostgres({ durable = false } = {}): Promise<PostgresServer> {
  const bin = binDir();
  const user = serverUser();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-pg-'));
  if (user) await chown(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const init = spawnSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'ferry', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'], { encoding: 'utf8', ...(user ?? {}) });
  if (init.status !== 0) throw new Error(`initdb failed (${init.status}): ${init.stderr || init.stdout || init.error?.message}`);
  const port = await freePort();
  const args = ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=300', ...(durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'])];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const url = (database = 'ferry'): string => `postgres://ferry@127.0.0.1:${port}/${database}`;
  let databases = 0;

  const start = async (): Promise<void> => {
    let log = '';
    const proc = spawn(path.join(bin, 'postgres'), args, { stdio: ['ignore', 'pipe', 'pipe'], ...(user ?? {}) });
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    proc.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await waitUntil(async () => {
      if (proc.exitCode !== null) throw new Error(`postgres exited (${proc.exitCode}):\n${log}`);
      return /ready to accept connections/.test(log);
    }, 30_000, () => `postgres did not start:\n${log}`);
  };
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  };

  await start();
  const admin = new pg.Client({ connectionString: url('postgres') });
  await admin.connect();
  await admin.query('CREATE DATABASE ferry');
  await admin.end();

  return {
    dir,
    url,
    async createDatabase() {
      const name = `ferry_${++databases}`;
      const c = new pg.Client({ connectionString: url('postgres') });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    stop,
    start,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
