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

  /** Whether text is held back (it may begin a stop sequence): what was shown so far may still grow at the end. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /** Adds generated text; returns what may be shown now. After a match, `stopped` is true and nothing more is emitted. */
  push(text: string): string {
    if (this.#stopped) return '';
    const buffer = this.#held + text;
    const cut = earliestMatch(buffer, this.#stops);
    // Where a stop sequence may begin that is not complete yet: one starting before a complete match wins if it
    // completes ("b\n" with stops "\n" and "b\nb"), so the decision waits for it.
    const open = buffer.length - this.#partialMatchLength(buffer);
    if (cut !== -1 && cut <= open) {
      this.#stopped = true;
      this.#held = '';
      return buffer.slice(0, cut);
    }
    this.#held = buffer.slice(open);
    return buffer.slice(0, open);
  }

  /** At the end of generation: held text ends at the first stop sequence it holds, if any. */
  flush(): string {
    if (this.#stopped) return '';
    const cut = earliestMatch(this.#held, this.#stops);
    const rest = cut === -1 ? this.#held : this.#held.slice(0, cut);
    this.#stopped = cut !== -1;
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

/** Where the first stop sequence in `text` begins, or -1. */
function earliestMatch(text: string, stops: readonly string[]): number {
  let cut = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at !== -1 && (cut === -1 || at < cut)) cut = at;
  }
  return cut;
}
