/**
 * How the CPU engine picks each next token. Greedy decoding stays inside llama.cpp (its argmax: of equal logits the
 * lowest id, as llama.cpp's greedy sampler picks, so ids equal node-llama-cpp's on the same file). A grammar is
 * followed by the core's matcher over the text, and the pick is the most likely token the grammar allows, as
 * llama.cpp's grammar sampler followed by its greedy sampler (node-llama-cpp's path) picks. Sampling goes through
 * Ferry's sampler over the top candidates' probabilities, with the random number of (seed, position), so its tokens
 * equal node-llama-cpp's on the same file.
 */
import { FerryError } from '../../core/errors.ts';
import type { GbnfMatcher } from '../../core/llm/gbnf.ts';
import type { GenerateRequest } from '../../core/llm/index.ts';
import { candidateCount, sampleToken } from '../../core/llm/sampler.ts';
import type { LlamaWasm } from './llama-wasm.ts';

/**
 * How many of the most likely tokens the exact pick looks at before asking for more (then for all). A vocabulary up to
 * FETCH_ALL tokens is sorted whole at once.
 */
const GRAMMAR_CANDIDATES = [64, 1024];
const FETCH_ALL = 4096;

export interface PickerModel {
  readonly llama: Pick<LlamaWasm, 'argmax' | 'top' | 'isEog'>;
  /** A token's bytes (cached by the engine). */
  piece(id: number): Uint8Array;
  readonly vocabularySize: number;
}

/** The picker for one generation; `generated` grows as the generation goes (the sampler's history). */
export function tokenPicker(model: PickerModel, request: GenerateRequest, grammar: GbnfMatcher | undefined, prompt: readonly number[], generated: readonly number[]): () => number {
  const { llama } = model;
  if (grammar) {
    let top = false;
    return () => {
      const pick = grammarPick(model, grammar, top);
      top = pick.top;
      if (!llama.isEog(pick.id)) grammar.acceptBytes(model.piece(pick.id));
      return pick.id;
    };
  }
  const temperature = request.temperature ?? 0;
  if (temperature === 0) return () => llama.argmax();
  const settings = { temperature, topK: request.topK, topP: request.topP, minP: request.minP, repeatPenalty: request.repeatPenalty, seed: request.seed ?? 0 };
  return () => {
    const history = [...prompt, ...generated];
    return sampleToken(llama.top(candidateCount(settings)), settings, history.length, history);
  };
}

/**
 * The most likely token the grammar allows next: an end-of-generation token only where the grammar may end, any
 * other only if its text continues the grammar; `top`: whether it is the most likely token of all. With `tryGreedy`
 * (the last pick was the most likely token: free text, where it mostly stays so) the greedy pick is tried first, as
 * llama.cpp's grammar sampler does: allowed, it is the answer (the most likely token overall is the most likely
 * allowed one) and the step costs what a free one does. Otherwise the first allowed one of the sorted candidates.
 */
export function grammarPick(model: PickerModel, grammar: GbnfMatcher, tryGreedy: boolean): { id: number; top: boolean } {
  const { llama, vocabularySize } = model;
  const firstByte = grammar.firstByteTest();
  const allowed = (id: number): boolean => {
    if (llama.isEog(id)) return grammar.canEnd;
    const piece = model.piece(id);
    return piece.length > 0 && firstByte(piece[0]!) && grammar.allowsPiece(piece);
  };
  if (tryGreedy) {
    const greedy = llama.argmax();
    if (allowed(greedy)) return { id: greedy, top: true };
  }
  // Candidates come sorted by logit, equal ones lowest id first: the first allowed one is the pick.
  const sizes = vocabularySize <= FETCH_ALL ? [vocabularySize] : [...GRAMMAR_CANDIDATES, vocabularySize];
  let checked = 0;
  for (const k of sizes) {
    const candidates = llama.top(Math.min(k, vocabularySize));
    for (let i = checked; i < candidates.length; i++) {
      const { token, p } = candidates[i]!;
      if (allowed(token)) return { id: token, top: p === candidates[0]!.p };
    }
    checked = candidates.length;
    if (checked >= vocabularySize) break;
  }
  throw new FerryError('llm/grammar-dead-end', "No token of this model can continue the text under the request's grammar, and the grammar cannot end here. Check the grammar: each of its paths must be writable with the model's tokens.");
}
