import { FerryError } from '../errors.ts';

export const MAX_STOP_SEQUENCES = 16;
export const MAX_STOP_LENGTH = 256;

export function checkStopSequences(stop: readonly string[] | undefined): readonly string[] {
  if (stop === undefined) return [];
  if (!Array.isArray(stop) || stop.length > MAX_STOP_SEQUENCES) {
    throw new FerryError('llm/bad-request', `stop must be a list of at most ${MAX_STOP_SEQUENCES} strings.`);
  }
  for (const s of stop) {
    if (typeof s !== 'string' || s.length === 0 || s.length > MAX_STOP_LENGTH) {
      throw new FerryError('llm/bad-request', `Each stop sequence must be a non-empty string of at most ${MAX_STOP_LENGTH} characters, got ${JSON.stringify(s)}.`);
    }
  }
  return stop;
}

/**
 * Stop sequences over streamed text. Text that could be the start of a stop sequence is held back until it is
 * clearly not one, so nothing after (or part of) a stop sequence is ever emitted, however tokens split it.
 */
export class StopSequences {
  readonly #stops: readonly string[];
  #held = '';
  #stopped = false;

  constructor(stops: readonly string[] | undefined) {
    this.#stops = checkStopSequences(stops);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Adds generated text; returns what may be shown now. After a match, `stopped` is true and nothing more is emitted. */
  push(text: string): string {
    if (this.#stopped) return '';
    const buffer = this.#held + text;
    let cut = -1;
    for (const stop of this.#stops) {
      const at = buffer.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.#stopped = true;
      this.#held = '';
      return buffer.slice(0, cut);
    }
    const keep = this.#partialMatchLength(buffer);
    this.#held = buffer.slice(buffer.length - keep);
    return buffer.slice(0, buffer.length - keep);
  }

  /** At the end of generation: held text was not a stop sequence after all. */
  flush(): string {
    const rest = this.#stopped ? '' : this.#held;
    this.#held = '';
    return rest;
  }

  /** The longest suffix of `buffer` that is a proper prefix of some stop sequence. */
  #partialMatchLength(buffer: string): number {
    let best = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, buffer.length); n > best; n--) {
        if (buffer.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
