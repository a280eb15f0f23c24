/**
 * A real S3-compatible server for one test file or bench: s3rver (npm), run as its own process on a free loopback
 * port with its bytes in a temp folder, reached by the relay through the AWS SDK exactly as R2 or MinIO would be.
 * (No S3-compatible server is a Debian 12 package and MinIO's binary cannot be downloaded here; s3rver is the
 * S3 server on npm that test suites use most, speaks SigV4, ranged GETs and path-style buckets, and keeps its
 * bytes on disk, so it can be stopped and started again mid-test.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitUntil } from './ports.ts';

/** s3rver's fixed credentials: it checks every request's signature against them. */
export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** The folder s3rver keeps its buckets' objects in. */
  dir: string;
  /** An `--objects` location in the bucket, under its own prefix (each caller gets a fresh one). */
  location(prefix?: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * Starts the server with one bucket and sets s3rver's credentials in this process's environment (the SDK's default
 * chain reads them there, as a relay reads its own); child relays get them through `S3_CREDENTIALS`.
 */
export async function startS3Server(bucket = 'ferry'): Promise<S3Server> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-s3-'));
  const port = await freePort();
  const cli = createRequire(import.meta.url).resolve('s3rver/bin/s3rver.js');
  const endpoint = `http://127.0.0.1:${port}`;
  Object.assign(process.env, S3_CREDENTIALS);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let prefixes = 0;

  const start = async (): Promise<void> => {
    let log = '';
    const proc = spawn(process.execPath, [cli, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--configure-bucket', bucket], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    proc.stdout!.on('data', (c: Buffer) => (log += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (log += c.toString()));
    await waitUntil(async () => {
      if (proc.exitCode !== null) throw new Error(`s3rver exited (${proc.exitCode}):\n${log}`);
      return fetch(endpoint).then(() => true, () => false);
    }, 30_000, () => `s3rver did not start:\n${log}`);
  };
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    endpoint,
    bucket,
    dir,
    location: (prefix = `t${++prefixes}`) => `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=us-east-1`,
    stop,
    start,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
