import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserCommand } from 'vitest/node';
import type { Engine, KvState } from '../../src/core/llm/engine.ts';
import type { TinyModelParams } from '../../src/core/llm/gguf/tiny-model.ts';
import type { NodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';

/** A KV state as it crosses from Node to the page and back (bytes as base64). */
export interface WireKvState {
  readonly engine: string;
  readonly model: string;
  readonly tokens: number[];
  readonly bytes: string;
}

export interface NativeKvRun {
  /** node-llama-cpp's KV format (EngineInfo.kvFormat). */
  readonly kvFormat: string | undefined;
  /** The slot's state after generating from `prompt` (saveKv), when asked for. */
  readonly state?: WireKvState;
  /** What it generated greedily (from `prompt`, or from `next` after loading a state). */
  readonly tokens: number[];
  /** Prompt tokens its KV already held. */
  readonly cachedTokens: number;
}

const toWire = (state: KvState): WireKvState => ({ engine: state.engine, model: state.model, tokens: [...state.tokens], bytes: Buffer.from(state.bytes).toString('base64') });
const fromWire = (state: WireKvState): KvState => ({ ...state, bytes: new Uint8Array(Buffer.from(state.bytes, 'base64')) });

/** node-llama-cpp (CPU, 1 thread, one slot) on the tiny model for `params`, as the relay's workers load it. */
async function withNativeEngine<T>(params: Partial<TinyModelParams>, run: (engine: NodeLlamaEngine) => Promise<T>): Promise<T> {
  const [{ generateTinyModel }, { createNodeLlamaEngine }] = await Promise.all([import('../../src/core/llm/gguf/tiny-model.ts'), import('../../server/llm/node-llama-engine.ts')]);
  const dir = await mkdtemp(join(tmpdir(), 'ferry-kv-cmd-'));
  try {
    const modelPath = join(dir, 'model.gguf');
    await writeFile(modelPath, generateTinyModel(params));
    const engine = await createNodeLlamaEngine({ modelPath, gpu: false, slots: 1, contextSize: 512, threads: 1, tempDir: dir });
    try {
      return await run(engine);
    } finally {
      await engine.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function greedy(engine: Engine, tokens: readonly number[], maxTokens: number): Promise<{ tokens: number[]; cachedTokens: number }> {
  const { generateAll } = await import('../../src/core/llm/collect.ts');
  const done = await generateAll(engine, { prompt: { tokens }, maxTokens, temperature: 0, slot: 'kv' });
  return { tokens: [...done.tokens], cachedTokens: done.stats.cachedTokens };
}

/** Generates greedily from `prompt` (token ids) and saves the slot's KV. */
const nativeKvSave: BrowserCommand<[params: Partial<TinyModelParams>, prompt: number[], maxTokens: number], NativeKvRun> = (_ctx, params, prompt, maxTokens) =>
  withNativeEngine(params, async (engine) => {
    const run = await greedy(engine, prompt, maxTokens);
    return { kvFormat: engine.info.kvFormat, state: toWire(await engine.saveKv('kv')), ...run };
  });

/** Loads `state` into a fresh engine's slot, then generates greedily from `next` (which extends the state's ids). */
const nativeKvLoad: BrowserCommand<[params: Partial<TinyModelParams>, state: WireKvState, next: number[], maxTokens: number], NativeKvRun> = (_ctx, params, state, next, maxTokens) =>
  withNativeEngine(params, async (engine) => {
    await engine.loadKv('kv', fromWire(state));
    return { kvFormat: engine.info.kvFormat, ...(await greedy(engine, next, maxTokens)) };
  });

export const kvCommands = { nativeKvSave, nativeKvLoad };

declare module 'vitest/browser' {
  interface BrowserCommands {
    nativeKvSave: (params: Partial<TinyModelParams>, prompt: number[], maxTokens: number) => Promise<NativeKvRun>;
    nativeKvLoad: (params: Partial<TinyModelParams>, state: WireKvState, next: number[], maxTokens: number) => Promise<NativeKvRun>;
  }
}
