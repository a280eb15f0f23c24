/**
 * A relay for the browser's speculative-decoding tests, started once in the Vitest process: it serves a generated
 * target model and verifies drafts at /api/v2/verify; with it come the target's own greedy runs (node-llama-cpp,
 * CPU) on the test prompts, which a speculative run must equal.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { BrowserCommand } from 'vitest/node';
import type { TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';
import type { GreedyRun } from './native-greedy.ts';

export interface VerifyRelay {
  /** ws://… of /api/v2/verify. */
  readonly url: string;
  /** The target model's id (its SHA-256). */
  readonly model: string;
  readonly runs: GreedyRun[];
}

let running: { app: FastifyInstance; dir: string } | undefined;

const startVerifyRelay: BrowserCommand<[params: Partial<TinyModelParams>, prompts: string[], maxTokens: number], VerifyRelay> = async (_ctx, params, prompts, maxTokens) => {
  if (running) throw new Error('a verify relay is already running: stop it first');
  const [{ generateTinyModel }, { greedyRuns }, { buildRelay }, { defaultConfig }, { fileSha256 }, { verifyPath }] = await Promise.all([
    import('../../src/core/llm/gguf/tiny-model.ts'),
    import('./native-greedy.ts'),
    import('../../server/app.ts'),
    import('../../server/config.ts'),
    import('../../server/llm/file-hash.ts'),
    import('../../src/core/protocol/index.ts'),
  ]);
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-verify-relay-'));
  const model = path.join(dir, 'target.gguf');
  await writeFile(model, generateTinyModel(params));
  await mkdir(path.join(dir, 'dist'));
  await writeFile(path.join(dir, 'dist', 'index.html'), '<!doctype html><title>shell</title>');
  // The test page is on Vitest's origin: it may call this relay.
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, allowOrigins: ['*'], staticDir: path.join(dir, 'dist'), dataDir: path.join(dir, 'data'), model, embeddedWorker: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  running = { app, dir };
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { url: `ws://127.0.0.1:${port}${verifyPath}`, model: await fileSha256(model), runs: await greedyRuns(model, prompts, maxTokens) };
};

const stopVerifyRelay: BrowserCommand<[], void> = async () => {
  const relay = running;
  running = undefined;
  if (!relay) return;
  await relay.app.close();
  await rm(relay.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
};

export const verifyRelayCommands = { startVerifyRelay, stopVerifyRelay };

declare module 'vitest/browser' {
  interface BrowserCommands {
    startVerifyRelay: (params: Partial<TinyModelParams>, prompts: string[], maxTokens: number) => Promise<VerifyRelay>;
    stopVerifyRelay: () => Promise<void>;
  }
}
