import type { ChatMessage } from './messages.ts';

/*
 * Changes since the lead's first version (all additive: nothing an adapter already does breaks):
 * - EngineInfo.addBos (optional): whether prompts start with BOS; preparePrompt() (prompt.ts) adds it, so
 *   `tokenize` never adds BOS itself — it only maps text to ids (`special` parses special-token text).
 * - EngineInfo.device (optional): where the engine runs, in words ("CPU, 1 thread", "CUDA: NVIDIA H100").
 * - Documented: GenerateEvent 'done' `tokens` holds every generated id (a matched stop sequence's included, so a
 *   transcript resumes exactly), while `text` ends before the stop sequence; concatenated `token` texts == `text`.
 * - Engine.verify (optional): greedy picks at every position of a drafted continuation, for speculative decoding.
 */

/**
 * The one Engine interface (DESIGN §5). Browser adapters (web-llm, wllama) and server adapters (node-llama-cpp,
 * OpenAI-compatible) implement it; the runtime, the relay and the placement policy only ever see this.
 * Everything crossing it is structured-clone/JSON friendly so it can travel through comlink or a WebSocket.
 */

export type EngineKind = 'webgpu' | 'wasm-cpu' | 'native' | 'remote';

export interface EngineInfo {
  /** Adapter name: 'web-llm' | 'wllama' | 'node-llama-cpp' | 'openai'. */
  readonly id: string;
  readonly kind: EngineKind;
  /** The model: a GGUF file's SHA-256, a web-llm model id, or the upstream's model name. */
  readonly model: string;
  /**
   * Hash of the vocabulary (see tokenizerIdOf). Equal ids mean a transcript's token ids can be reused as they
   * are; otherwise the transcript is re-tokenized from its text. Empty when the engine cannot tell (remote).
   */
  readonly tokenizerId: string;
  readonly contextSize: number;
  /** saveKv/loadKv are available. */
  readonly kvState: boolean;
  /**
   * What its saved KV states are: engines of one format and one model load each other's (kv-state.ts: llama.cpp
   * built from one source, native or WebAssembly). Absent: its own id — only engines like it load them.
   */
  readonly kvFormat?: string;
  /** GenerateRequest.grammar is honoured. */
  readonly grammar: boolean;
  /** The model's own chat template (Jinja), when the engine knows it. */
  readonly chatTemplate?: string;
  readonly bosToken?: string;
  readonly eosToken?: string;
  /** Prompts start with bosToken (llama.cpp's add_bos_token). Absent: true when bosToken is set. */
  readonly addBos?: boolean;
  /** Where the engine runs, for people: "CPU, 1 thread", "CUDA: NVIDIA H100", "https://host/v1". */
  readonly device?: string;
}

/**
 * What to generate from. `tokens` is the exact prompt (how transcripts resume token-identically); `messages` is
 * rendered with the model's chat template; `text` is tokenized as it is.
 */
export type Prompt =
  | { readonly tokens: readonly number[] }
  | { readonly messages: readonly ChatMessage[] }
  | { readonly text: string };

export type Grammar =
  | { readonly kind: 'json-schema'; readonly schema: unknown }
  | { readonly kind: 'gbnf'; readonly text: string };

export interface GenerateRequest {
  readonly prompt: Prompt;
  readonly maxTokens: number;
  /**
   * 0 (the default) is greedy decoding: the same model file gives the same tokens everywhere. Above 0, local
   * engines sample with Ferry's sampler (sampler.ts), whose state is (seed, position): the same model file gives
   * the same tokens everywhere too, and a continuation from the same ids goes on as if never cut.
   */
  readonly temperature?: number;
  /** Candidates to sample from (0 = the sampler's default). */
  readonly topK?: number;
  readonly topP?: number;
  /** Drop candidates less likely than minP × the most likely one. */
  readonly minP?: number;
  /** Divide the probability of ids among the last 64 by this (1 = off). */
  readonly repeatPenalty?: number;
  readonly seed?: number;
  readonly stop?: readonly string[];
  readonly grammar?: Grammar;
  /**
   * The KV slot to use: engines keep one cached sequence per slot (normally a session id), so the next turn of
   * the same session prefills only the tokens that are new.
   */
  readonly slot?: string;
  readonly signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationStats {
  readonly promptTokens: number;
  /** Prompt tokens whose KV was already in the slot (not prefilled again). */
  readonly cachedTokens: number;
  readonly completionTokens: number;
  readonly prefillMs: number;
  readonly decodeMs: number;
  /** From the call to the first token. */
  readonly ttftMs: number;
  readonly prefillTps: number;
  readonly decodeTps: number;
}

export type GenerateEvent =
  /** `id` is null only for remote engines that do not report token ids. */
  | { readonly type: 'token'; readonly id: number | null; readonly text: string }
  | {
    readonly type: 'done';
    readonly finishReason: FinishReason;
    readonly text: string;
    readonly tokens: readonly number[];
    readonly stats: GenerationStats;
    /** The engine that generated, where this one handed the request on (its checkpoint names that engine). */
    readonly engine?: Pick<EngineInfo, 'id' | 'kind' | 'model'>;
    /** A speculative generation's drafts and how many the verifier took. */
    readonly speculative?: SpeculativeTally;
  };

/**
 * How a speculative generation's drafts fared: `accepted` of `drafted` ids taken over `rounds` verifications, of
 * which `rejected` ended at a disagreement (the rest took the whole draft). Per-token acceptance is
 * accepted / (accepted + rejected): each rejection is the one disagreement after that round's agreements.
 */
export interface SpeculativeTally {
  readonly draftModel: string;
  readonly targetModel: string;
  readonly rounds: number;
  readonly drafted: number;
  readonly accepted: number;
  readonly rejected: number;
}

/**
 * A draft to check against this engine's own greedy choices (speculative decoding): `context` is the exact token
 * sequence the draft continues, `draft` the proposed next ids. One forward pass over both.
 */
export interface VerifyRequest {
  readonly context: readonly number[];
  readonly draft: readonly number[];
  /** As in GenerateRequest: the slot keeps the context's KV, so the next round evaluates only the new tokens. */
  readonly slot?: string;
  readonly signal?: AbortSignal;
}

export interface VerifyResult {
  /**
   * The engine's greedy pick after `context` followed by the first i draft ids, for i = 0 … draft.length (one more
   * than the draft); null where the pick ends the generation (an end-of-generation token).
   */
  readonly argmax: readonly (number | null)[];
  /** Context tokens whose KV the slot already held (not evaluated again). */
  readonly cachedTokens: number;
}

/** A slot's saved KV cache: the tokens it covers and the engine's opaque state bytes. */
export interface KvState {
  /** The saving engine's KV format (kvFormatOf). */
  readonly engine: string;
  readonly model: string;
  readonly tokens: readonly number[];
  readonly bytes: Uint8Array;
}

export interface Engine {
  readonly info: EngineInfo;
  /** Text → ids, never adding BOS (see preparePrompt). `special`: text such as `<|im_start|>` becomes its special id. */
  tokenize(text: string, options?: { readonly special?: boolean }): Promise<number[]>;
  detokenize(ids: readonly number[]): Promise<string>;
  /**
   * Streams tokens and ends with exactly one `done` event; aborting the signal ends it with 'cancelled' (at the
   * next token: the work stops there). The `token` texts concatenate to the `done` text; a stop sequence ends the
   * text before it (its ids stay in `tokens`). Bad requests throw a FerryError before anything is generated.
   */
  generate(request: GenerateRequest): AsyncIterable<GenerateEvent>;
  /** Greedy picks at every position of context + draft, in one forward pass (speculative decoding's target side). */
  verify?(request: VerifyRequest): Promise<VerifyResult>;
  saveKv?(slot: string): Promise<KvState>;
  loadKv?(slot: string, state: KvState): Promise<void>;
  /** Forgets a slot's cached sequence. */
  releaseSlot?(slot: string): Promise<void>;
  /** The tokens a slot's KV cache holds now (undefined: no such slot); a node reports their prefixes (RunHost). */
  slotTokens?(slot: string): readonly number[] | undefined;
  dispose(): Promise<void>;
}
