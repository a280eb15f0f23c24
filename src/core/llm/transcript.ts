import { FerryError } from '../errors.ts';
import type { Engine, GenerateRequest } from './engine.ts';
import { tokenizePrompt } from './prompt.ts';

/**
 * Transcripts carry both token ids and text. Ids are reused exactly when the engine's tokenizer id matches the one
 * that produced them (token-identical resume); otherwise the text is tokenized again by the new engine.
 */
export interface Transcript {
  readonly tokenizerId: string;
  readonly tokens: readonly number[];
  readonly text: string;
}

export interface TranscriptIds {
  readonly tokens: number[];
  /** True when the ids were reused as they were; false when re-tokenized from the text. */
  readonly reused: boolean;
}

function reusable(engine: Pick<Engine, 'info'>, transcript: Transcript): boolean {
  return transcript.tokenizerId !== '' && transcript.tokenizerId === engine.info.tokenizerId && transcript.tokens.length > 0;
}

/** A whole prompt's ids on this engine (the text is a full prompt: BOS is added as for any prompt). */
export async function transcriptTokens(engine: Pick<Engine, 'info' | 'tokenize'>, transcript: Transcript): Promise<TranscriptIds> {
  if (reusable(engine, transcript)) return { tokens: [...transcript.tokens], reused: true };
  return { tokens: await tokenizePrompt(engine, transcript.text), reused: false };
}

/** An interrupted generation: the prompt it ran on, what it had produced, and the request it was serving. */
export interface PartialGeneration {
  readonly prompt: Transcript;
  readonly generated: Transcript;
  /** The original request (its prompt is ignored; `maxTokens` is the original budget). */
  readonly request: Omit<GenerateRequest, 'prompt'>;
}

export interface ResumePlan {
  /** The continuation request: prompt = prompt ids + generated ids, budget = what was left. */
  readonly request: GenerateRequest;
  readonly reused: boolean;
}

/**
 * Turns an interrupted generation into the request that continues it. With the same tokenizer the prompt is the
 * exact ids (prompt + generated so far), so greedy decoding continues token-identically to an uninterrupted run;
 * otherwise prompt and partial text are re-tokenized and the continuation is the best this engine can do.
 */
export async function resumeRequest(engine: Pick<Engine, 'info' | 'tokenize'>, partial: PartialGeneration): Promise<ResumePlan> {
  const { prompt, generated, request } = partial;
  let tokens: number[];
  let reused: boolean;
  if (reusable(engine, prompt) && (generated.tokens.length === 0 || generated.tokenizerId === prompt.tokenizerId)) {
    tokens = [...prompt.tokens, ...generated.tokens];
    reused = true;
  } else {
    tokens = await tokenizePrompt(engine, prompt.text + generated.text);
    reused = false;
  }
  const done = generated.tokens.length > 0 ? generated.tokens.length : generated.text.length > 0 ? (await engine.tokenize(generated.text)).length : 0;
  const maxTokens = request.maxTokens - done;
  if (maxTokens < 1) {
    throw new FerryError('llm/resume-complete', `Nothing to resume: the generation already produced ${done} of its ${request.maxTokens} tokens.`);
  }
  return { request: { ...request, prompt: { tokens }, maxTokens }, reused };
}
