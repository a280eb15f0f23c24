/**
 * What the page asks the LLM worker (workers/llm.worker.ts) to do, through comlink. One engine is loaded at a time;
 * generations are pulled one event per call, so the page's pace is the worker's (backpressure) and a cancel takes
 * effect at the next token.
 */
import type { EngineInfo, GenerateEvent, GenerateRequest } from '../../core/llm/index.ts';
import type { DownloadProgress } from './model-download.ts';
import type { WebLlmModelRecord } from './webllm-catalog.ts';

export const LLM_PROTOCOL_VERSION = 2;

export interface WllamaLoadRequest {
  readonly kind: 'wllama';
  /** The GGUF bytes, or where to download them (cached in OPFS). */
  readonly model: Blob | { readonly url: string };
  readonly modelId?: string;
  readonly contextSize?: number;
  readonly threads?: number;
}

export type LoadRequest =
  | WllamaLoadRequest
  | {
      readonly kind: 'web-llm';
      /** A model_id of web-llm's catalog (prebuiltAppConfig), or of `modelList`. */
      readonly modelId: string;
      /** Catalog entries to use instead of web-llm's prebuilt list (e.g. served by the relay). */
      readonly modelList?: readonly WebLlmModelRecord[];
      readonly contextSize?: number;
      /**
       * What to load instead when web-llm fails in a way the CPU can take over from (a lost GPU device, GPU
       * memory, an adapter that cannot run the model, a model that cannot be fetched): the worker loads it and
       * reports a 'fallback' progress event saying why.
       */
      readonly fallback?: WllamaLoadRequest;
    };

export type LoadProgress =
  | ({ readonly type: 'download' } & DownloadProgress)
  | { readonly type: 'web-llm'; readonly progress: number; readonly text: string }
  | { readonly type: 'loading'; readonly text: string }
  /** web-llm failed with `code` (on load, or mid-generation); wllama takes over. `text` says why, for people. */
  | { readonly type: 'fallback'; readonly from: 'web-llm'; readonly code: string; readonly text: string };

export type WireGenerateRequest = Omit<GenerateRequest, 'signal'>;

/** A generation's events as the worker sends them: the engine's, and `engine` when it fell back mid-generation. */
export type WireGenerateEvent = GenerateEvent | { readonly type: 'engine'; readonly info: EngineInfo };

export interface LlmWorkerApi {
  readonly version: number;
  /** Loads (replacing any loaded engine) and returns its info. `onProgress` must be a comlink proxy. */
  load(request: LoadRequest, onProgress?: (progress: LoadProgress) => void): Promise<EngineInfo>;
  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]>;
  detokenize(ids: readonly number[]): Promise<string>;
  /** Starts a generation; the id is for `next` and `cancel`. */
  start(request: WireGenerateRequest): Promise<number>;
  /** The generation's next event; after its `done` the id is forgotten. */
  next(id: number): Promise<WireGenerateEvent>;
  cancel(id: number): Promise<void>;
  releaseSlot(slot: string): Promise<void>;
  unload(): Promise<void>;
}
