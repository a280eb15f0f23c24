/**
 * Turning a model reference into a running engine, shared by the relay and `ferry worker`: a GGUF file on
 * node-llama-cpp — resolveModel (models.ts) checks a local path or downloads a URL / hf: reference once into
 * <data>/models; this loads the result with llama.cpp's temp files under <data>/llm-tmp — or a model an
 * OpenAI-compatible serving cluster serves (vLLM, SGLang, llama.cpp's server, another Ferry relay's /v1).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { tokenizerIdOfGguf } from '../../src/core/llm/tokenizer-id.ts';
import type { ModelFile } from '../api/model-files.ts';
import { openFileReader } from './file-reader.ts';
import type { DownloadProgress, ResolvedModel } from './models.ts';
import type { NodeLlamaEngine } from './node-llama-engine.ts';
import { createOpenAiEngine, type OpenAiEngine } from './openai-engine.ts';

export async function openModelEngine(model: ResolvedModel, dataDir: string, options: { slots?: number } = {}): Promise<NodeLlamaEngine> {
  const { createNodeLlamaEngine } = await import('./node-llama-engine.ts');
  const tempDir = path.join(dataDir, 'llm-tmp');
  await mkdir(tempDir, { recursive: true });
  return createNodeLlamaEngine({ modelPath: model.path, modelSha256: model.sha256, tempDir, ...(options.slots ? { slots: options.slots } : {}) });
}

/**
 * The engine of `ferry worker --upstream URL --model NAME`: checked against the upstream's model list before the
 * worker attaches, so a wrong URL, key or name stops it with the fix.
 */
export function openUpstreamEngine(options: { upstream: string; model: string; apiKey?: string }): Promise<OpenAiEngine> {
  return createOpenAiEngine({ baseUrl: options.upstream, model: options.model, ...(options.apiKey ? { apiKey: options.apiKey } : {}) });
}

/** A log line per 10% of a download (or per 100 MB when the size is unknown): enough to see it move. */
export function downloadProgress(log: (message: string) => void): (progress: DownloadProgress) => void {
  let reported = 0;
  return ({ received, total }) => {
    if (received - reported >= (total ? total / 10 : 100e6) || received === total) {
      reported = received;
      log(`downloading the model: ${(received / 1e6).toFixed(0)}${total ? ` of ${(total / 1e6).toFixed(0)}` : ''} MB`);
    }
  };
}

/**
 * How the relay lists a model it hosts for browsers (api/model-files.ts), read from the file alone so the list is
 * ready before llama.cpp has loaded it. contextSize is what the relay's engine uses: the model's, at most 4096
 * (createNodeLlamaEngine's default).
 */
export async function hostedModelFile(model: ResolvedModel): Promise<ModelFile> {
  const reader = await openFileReader(model.path);
  try {
    return { sha256: model.sha256, path: model.path, name: model.name, label: model.label, tokenizerId: await tokenizerIdOfGguf(reader), contextSize: Math.min(model.info.contextLength, 4096) };
  } finally {
    await reader.close();
  }
}
