import { FerryError } from '../errors.ts';
import type { GenerateRequest } from './engine.ts';
import { checkStopSequences } from './stop.ts';

/** Checks a request's numbers before an engine acts on it; every engine calls this first. */
export function checkRequest(request: GenerateRequest, contextSize: number): void {
  const bad = (what: string) => new FerryError('llm/bad-request', `Invalid generation request: ${what}.`);
  const { maxTokens, temperature, topK, topP, minP, repeatPenalty, seed, slot } = request;
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > contextSize) throw bad(`maxTokens must be an integer from 1 to the context size ${contextSize}, got ${maxTokens}`);
  if (temperature !== undefined && !(temperature >= 0 && temperature <= 10)) throw bad(`temperature must be from 0 to 10, got ${temperature}`);
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0)) throw bad(`topK must be a non-negative integer, got ${topK}`);
  if (topP !== undefined && !(topP > 0 && topP <= 1)) throw bad(`topP must be in (0, 1], got ${topP}`);
  if (minP !== undefined && !(minP >= 0 && minP <= 1)) throw bad(`minP must be from 0 to 1, got ${minP}`);
  if (repeatPenalty !== undefined && !(repeatPenalty >= 1 && repeatPenalty <= 10)) throw bad(`repeatPenalty must be from 1 (off) to 10, got ${repeatPenalty}`);
  if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) throw bad(`seed must be an integer from 0 to 2^32-1, got ${seed}`);
  if (slot !== undefined && (typeof slot !== 'string' || slot.length === 0 || slot.length > 200)) throw bad('slot must be a non-empty string of at most 200 characters');
  checkStopSequences(request.stop);
}

/** How many tokens a context of `contextSize` leaves after a prompt of `promptTokens`; none left is a typed error. */
export function roomAfter(promptTokens: number, contextSize: number): number {
  if (promptTokens >= contextSize) {
    throw new FerryError('llm/context-full', `The prompt has ${promptTokens} tokens; the context holds ${contextSize}. Shorten the conversation or load the model with a larger context.`, {
      details: { promptTokens, contextSize },
    });
  }
  return contextSize - promptTokens;
}
