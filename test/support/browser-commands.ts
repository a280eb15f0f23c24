import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserCommand } from 'vitest/node';
import type { TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';
import type { GreedyRun } from './native-greedy.ts';
import { kvCommands } from './kv-commands.ts';
import { migrateCommands } from './migrate-commands.ts';
import { runtimeCommands } from './runtime-commands.ts';
import { modelServerCommands } from './model-server-commands.ts';
import { verifyRelayCommands } from './verify-relay-commands.ts';

/**
 * Server-side helpers that browser tests call through `commands` from 'vitest/browser'
 * (they run in the Vitest process, with Node APIs and native engines). Heavy modules load on first use,
 * so the Vitest config stays quick to load for every project.
 */

/** SHA-256 (hex) of the tiny model that Node generates for these parameters. */
const tinyModelSha256: BrowserCommand<[params: Partial<TinyModelParams>], string> = async (_ctx, params) => {
  const { generateTinyModel } = await import('../../src/core/llm/gguf/tiny-model.ts');
  return createHash('sha256').update(generateTinyModel(params)).digest('hex');
};

/** Greedy node-llama-cpp runs (CPU, 1 thread) on the tiny model for these parameters, under a GBNF grammar if given. */
const nativeGreedy: BrowserCommand<[params: Partial<TinyModelParams>, prompts: string[], maxTokens: number, grammar?: string], GreedyRun[]> = async (
  _ctx,
  params,
  prompts,
  maxTokens,
  grammar,
) => {
  const [{ generateTinyModel }, { greedyRuns }] = await Promise.all([
    import('../../src/core/llm/gguf/tiny-model.ts'),
    import('./native-greedy.ts'),
  ]);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-browser-cmd-'));
  try {
    const path = join(dir, 'model.gguf');
    await writeFile(path, generateTinyModel(params));
    return await greedyRuns(path, prompts, maxTokens, grammar);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
};

export const browserCommands = { tinyModelSha256, nativeGreedy, ...kvCommands, ...runtimeCommands, ...migrateCommands, ...modelServerCommands, ...verifyRelayCommands };

declare module 'vitest/browser' {
  interface BrowserCommands {
    tinyModelSha256: (params: Partial<TinyModelParams>) => Promise<string>;
    nativeGreedy: (params: Partial<TinyModelParams>, prompts: string[], maxTokens: number, grammar?: string) => Promise<GreedyRun[]>;
  }
}
