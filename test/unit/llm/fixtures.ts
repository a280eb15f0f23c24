import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateTinyModel, type TinyModelParams } from '../../../src/core/llm/gguf/index.ts';
import { createNodeLlamaEngine, type NodeLlamaEngine, type NodeLlamaEngineOptions } from '../../../server/llm/node-llama-engine.ts';

/** A temp folder with generated models in it; `cleanup` removes it. */
export async function modelDir(): Promise<{ dir: string; model(name: string, params?: Partial<TinyModelParams>): Promise<string>; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-llm-test-'));
  return {
    dir,
    async model(name, params = {}) {
      const file = path.join(dir, name);
      await writeFile(file, generateTinyModel(params));
      return file;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The engine as tests run it: CPU, 1 thread (deterministic on the 2-core build machines). */
export function cpuEngine(modelPath: string, options: Partial<NodeLlamaEngineOptions> = {}): Promise<NodeLlamaEngine> {
  return createNodeLlamaEngine({ modelPath, gpu: false, threads: 1, ...options });
}
