/**
 * `ferry start` with no model, as the README's first command runs it: it writes the generated demo model into the
 * data folder once (and again only when the file is damaged), says it is a demo model and how to give a real one,
 * and runs the embedded cloud worker on it. A `ferry worker` on the same machine and data folder attaches with the
 * token the relay keeps there, without being told it, and with the price it is given (`--price`; bad prices refused).
 * `ferry start --model NAME` downloads a catalog model (here the generated model, served by a local HTTP server as
 * a deployment's own catalog entry), resumes it after a dropped connection, and `ferry models` says what is there.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import * as v from 'valibot';
import { WorkerListSchema, workerPaths } from '../../src/core/protocol/index.ts';
import { generateTinyModel } from '../../src/core/llm/gguf/tiny-model.ts';
import { DEMO_MODEL_PARAMS } from '../../server/llm/demo-model.ts';
import { priceOption } from '../../server/config.ts';
import { isFerryError } from '../../src/core/errors.ts';
import { startRelayProcess, type RelayProcess } from '../support/relay-process.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

async function workersOf(url: string, count: number): Promise<v.InferOutput<typeof WorkerListSchema>['workers']> {
  for (const deadline = Date.now() + 90_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    const { workers } = v.parse(WorkerListSchema, await (await fetch(url + workerPaths.list)).json());
    if (workers.length >= count) return workers;
  }
  throw new Error(`fewer than ${count} workers attached to ${url}`);
}

describe('ferry start: the embedded worker on the demo model', () => {
  let dataDir: string;
  let relay: RelayProcess | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-start-'));
  });

  afterAll(async () => {
    await relay?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('writes the demo model once, says so, runs the embedded worker; a same-machine worker attaches with the kept token', async () => {
    relay = await startRelayProcess(['--data', dataDir]);
    expect(relay.output()).toMatch(/generated demo model \(random weights[\s\S]*--model PATH\|URL\|hf:/);
    const model = path.join(dataDir, 'models', 'demo-tiny.gguf');
    expect(new Uint8Array(await readFile(model))).toEqual(generateTinyModel(DEMO_MODEL_PARAMS));
    expect((await stat(path.join(dataDir, 'worker-token'))).mode & 0o777).toBe(0o600);
    const [embedded] = await workersOf(relay.url, 1);
    expect(embedded).toMatchObject({ embedded: true, profile: { name: 'embedded', engine: 'node-llama-cpp' } });

    const worker = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', 'worker', '--relay', relay.url, '--data', dataDir, '--name', 'local', '--price', '0.0001,0.0004'], { cwd: root, stdio: 'ignore' });
    try {
      const workers = await workersOf(relay.url, 2);
      const local = workers.find((w) => w.profile.name === 'local');
      // Same demo model (same bytes): sessions move between them token-identically.
      expect(local?.profile.model).toBe(embedded!.profile.model);
      expect(local?.profile.price).toEqual({ promptPer1k: 0.0001, outputPer1k: 0.0004 });
      expect(embedded!.profile.price).toBeUndefined();
    } finally {
      worker.kill('SIGTERM');
      await new Promise((resolve) => worker.once('exit', resolve));
    }
    await relay.stop();

    // A damaged demo model is written again; an intact one is left alone.
    await truncate(model, 1000);
    relay = await startRelayProcess(['--data', dataDir]);
    expect(new Uint8Array(await readFile(model))).toEqual(generateTinyModel(DEMO_MODEL_PARAMS));
    const before = (await stat(model)).mtimeMs;
    await relay.stop();
    relay = await startRelayProcess(['--data', dataDir]);
    expect((await stat(model)).mtimeMs).toBe(before);
  }, 240_000);

  test('`ferry relay` runs no worker of its own', async () => {
    await relay?.stop();
    relay = undefined;
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', 'relay', '--port', '0', '--data', dataDir, '--log-level', 'warn'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let log = '';
        child.stdout.on('data', (d: Buffer) => {
          log += d.toString();
          const m = /Ferry is running at (\S+)/.exec(log);
          if (m) resolve(m[1]!);
        });
        child.once('exit', () => reject(new Error(log)));
      });
      const { workers } = v.parse(WorkerListSchema, await (await fetch(url + workerPaths.list)).json());
      expect(workers).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }, 60_000);
});

describe('a worker price', () => {
  test('USD per 1,000 tokens: one number for both, or prompt,output; nothing for a free worker', () => {
    expect(priceOption('0.00018')).toEqual({ promptPer1k: 0.00018, outputPer1k: 0.00018 });
    expect(priceOption(' 0.0001 , 0.0004 ')).toEqual({ promptPer1k: 0.0001, outputPer1k: 0.0004 });
    expect(priceOption(undefined)).toBeUndefined();
    expect(priceOption('')).toBeUndefined();
  });

  test.each(['-1', 'cheap', '0.1,', '1,2,3', '5000', 'Infinity'])('refuses %j, saying how to write one', (text) => {
    let caught: unknown;
    try {
      priceOption(text);
    } catch (err) {
      caught = err;
    }
    expect(isFerryError(caught, 'config/bad-price')).toBe(true);
    expect((caught as Error).message).toMatch(/USD per 1,000 tokens/);
  });
});

/** Runs a short `ferry` command to its end: exit code and everything it printed. */
function ferry(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

describe('ferry start --model NAME: a catalog model', () => {
  const model = generateTinyModel({ seed: 9 });
  const sha256 = createHash('sha256').update(model).digest('hex');
  const ranges: (string | undefined)[] = [];
  let dropNext = true;
  let server: Server;
  let dir: string;
  let relay: RelayProcess | undefined;

  beforeAll(async () => {
    server = createServer((req, res) => {
      ranges.push(req.headers.range);
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const body = model.subarray(from);
      res.writeHead(from > 0 ? 206 : 200, { 'content-length': body.length, ...(from > 0 ? { 'content-range': `bytes ${from}-${model.length - 1}/${model.length}` } : {}) });
      if (dropNext) {
        dropNext = false;
        res.write(body.subarray(0, 300_000), () => res.destroy());
        return;
      }
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-catalog-'));
    const entry = { name: 'tiny-test', label: 'Tiny test model', family: 'llama', parameters: '1M', quantization: 'F32', license: 'Apache-2.0', contextLength: 512, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/tiny.gguf`, sha256, bytes: model.length, webLlm: [] };
    await writeFile(path.join(dir, 'catalog.json'), JSON.stringify([entry]));
  });

  afterAll(async () => {
    await relay?.stop();
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  test('a dropped download stops the start with the fix; the next start resumes it with Range, checks it and runs it; ferry models follows', async () => {
    const flags = ['--data', path.join(dir, 'data'), '--catalog', path.join(dir, 'catalog.json')];
    const listed = await ferry(['models', ...flags]);
    expect(listed.code).toBe(0);
    expect(listed.output).toMatch(/^demo +Demo model \(generated, random weights\).*offline default, written on first start$/m);
    expect(listed.output).toMatch(/^qwen2\.5-0\.5b +Qwen2\.5 0\.5B Instruct +0\.5B +Q4_K_M +491 MB +32,768 +Apache-2\.0 +-$/m);
    expect(listed.output).toMatch(/^tiny-test +Tiny test model +1M +F32 .* -$/m);

    const dropped = await ferry(['start', '--port', '0', '--log-level', 'warn', ...flags, '--model', 'tiny-test']);
    expect(dropped.code).toBe(1);
    expect(dropped.output).toMatch(/ferry: The download of http:\/\/127\.0\.0\.1:\d+\/tiny\.gguf stopped at \d+ bytes: .* It resumes where it stopped when tried again\./);
    expect((await ferry(['models', ...flags])).output).toMatch(/^tiny-test .* partial: \d+%, resumes on start$/m);

    relay = await startRelayProcess([...flags, '--model', 'tiny-test']);
    expect(ranges.at(-1)).toMatch(/^bytes=[1-9]\d*-$/);
    const [worker] = await workersOf(relay.url, 1);
    expect(worker!.profile.model).toBe(sha256);
    await relay.stop();
    relay = undefined;
    expect((await ferry(['models', ...flags])).output).toMatch(/^tiny-test .* downloaded$/m);

    const unknown = await ferry(['start', '--port', '0', ...flags, '--model', 'qwen2.5-7b']);
    expect(unknown.code).toBe(1);
    expect(unknown.output).toMatch(/ferry: "qwen2\.5-7b" is not in the model catalog \(did you mean .*qwen2\.5-0\.5b.*\)\. Catalog models: .*tiny-test/);
  }, 240_000);
});
