/**
 * How the wllama engine picks each next token. Greedy decoding stays inside llama.cpp. A grammar is kept here:
 * wllama 2 never accepts a picked token into its grammar's state (only the first token would be constrained), so the
 * core's matcher follows the text, and the pick is the most likely token the grammar allows, as llama.cpp's grammar
 * sampler followed by its greedy sampler (node-llama-cpp's path) picks. Sampling goes through Ferry's sampler over the
 * top candidates' probabilities, with the random number of (seed, position), so its tokens equal node-llama-cpp's on
 * the same file.
 */
import type { Wllama } from 'wllama-v2/esm/index.js';
import { FerryError } from '../../core/errors.ts';
import type { GbnfMatcher } from '../../core/llm/gbnf.ts';
import type { GenerateRequest } from '../../core/llm/index.ts';
import { candidateCount, sampleToken } from '../../core/llm/sampler.ts';

/**
 * How many of the most likely tokens the exact pick looks at before asking for more (then for all). A vocabulary up to
 * FETCH_ALL tokens comes whole at once: one round trip to wllama's worker costs more than the rest of the step.
 */
const GRAMMAR_CANDIDATES = [64, 1024];
const FETCH_ALL = 4096;

export interface PickerModel {
  readonly wllama: Wllama;
  /** A token's bytes (cached by the engine). */
  piece(id: number): Promise<Uint8Array>;
  /** The engine's cache of them, read without a wait. */
  readonly pieces: ReadonlyMap<number, Uint8Array>;
  readonly vocabularySize: number;
}

/** The picker for one generation; `generated` grows as the generation goes (the sampler's history). */
export async function tokenPicker(model: PickerModel, request: GenerateRequest, grammar: GbnfMatcher | undefined, prompt: readonly number[], generated: readonly number[]): Promise<() => Promise<number>> {
  const { wllama } = model;
  if (grammar) {
    await wllama.samplingInit({ temp: 0 });
    let top = false;
    return async () => {
      const pick = await grammarPick(model, grammar, top);
      top = pick.top;
      if (!wllama.isTokenEOG(pick.id)) grammar.acceptBytes(await model.piece(pick.id));
      return pick.id;
    };
  }
  const temperature = request.temperature ?? 0;
  if (temperature === 0) {
    await wllama.samplingInit({ temp: 0 });
    return async () => (await wllama.samplingSample()).token;
  }
  const settings = { temperature, topK: request.topK, topP: request.topP, minP: request.minP, repeatPenalty: request.repeatPenalty, seed: request.seed ?? 0 };
  return async () => {
    const history = [...prompt, ...generated];
    return sampleToken(await wllama.getLogits(candidateCount(settings)), settings, history.length, history);
  };
}

/**
 * The most likely token the grammar allows next: an end-of-generation token only where the grammar may end, any
 * other only if its text continues the grammar; `top`: whether it is the most likely token of all. With `tryGreedy`
 * (the last pick was the most likely token: free text, where it mostly stays so) llama.cpp's own greedy pick is tried
 * first, as its grammar sampler does: allowed, it is the answer (the most likely token overall is the most likely
 * allowed one) and the step costs what a free one does. Otherwise the exact pick over the sorted candidates.
 */
export async function grammarPick(model: PickerModel, grammar: GbnfMatcher, tryGreedy: boolean): Promise<{ id: number; top: boolean }> {
  const { wllama } = model;
  const firstByte = grammar.firstByteTest();
  const allowedPiece = (piece: Uint8Array): boolean => piece.length > 0 && firstByte(piece[0]!) && grammar.allowsPiece(piece);
  const allowed = (id: number): boolean | Promise<boolean> => {
    if (wllama.isTokenEOG(id)) return grammar.canEnd;
    const piece = model.pieces.get(id);
    return piece ? allowedPiece(piece) : model.piece(id).then(allowedPiece);
  };
  if (tryGreedy) {
    const greedy = (await wllama.samplingSample()).token;
    if (await allowed(greedy)) return { id: greedy, top: true };
  }
  return allowedArgmax(model, allowed);
}

/**
 * The exact pick: candidates come sorted by logit, the top ones first and more only when none of those is allowed;
 * of equally likely tokens the lowest id wins, as in llama.cpp's greedy sampler.
 */
async function allowedArgmax(model: PickerModel, allowed: (id: number) => boolean | Promise<boolean>): Promise<{ id: number; top: boolean }> {
  const { wllama, vocabularySize } = model;
  const sizes = vocabularySize <= FETCH_ALL ? [vocabularySize] : [...GRAMMAR_CANDIDATES, vocabularySize];
  let checked = 0;
  for (const k of sizes) {
    const candidates = await wllama.getLogits(Math.min(k, vocabularySize));
    for (let i = checked; i < candidates.length; i++) {
      if (!(await allowed(candidates[i]!.token))) continue;
      let best = candidates[i]!;
      for (let j = i + 1; j < candidates.length && candidates[j]!.p === best.p; j++) {
        const tie = candidates[j]!;
        if (tie.token < best.token && (await allowed(tie.token))) best = tie;
      }
      return { id: best.token, top: best.p === candidates[0]!.p };
    }
    checked = candidates.length;
    if (checked >= vocabularySize) break;
  }
  throw new FerryError('llm/grammar-dead-end', "No token of this model can continue the text under the request's grammar, and the grammar cannot end here. Check the grammar: each of its paths must be writable with the model's tokens.");
}
