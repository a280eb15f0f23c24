import { objectId } from '../store/hash.ts';
import type { ChatMessage } from './messages.ts';

/**
 * Compaction: a conversation that outgrows the model's context keeps going with its oldest turns left out of the
 * prompt (the agent and the checkpoints keep them all). A turn begins at a user message; the system message and the
 * newest turn always stay, and a note at the end of the system message tells the model how many turns it does not
 * see. The note goes into the system message rather than a message of its own because many chat templates refuse a
 * second system message or roles that do not alternate.
 *
 * The decision is state, not a function of where a step runs: the engines a session moves between may hold
 * different contexts, and a prompt compacted differently gives different tokens. So the host records it
 * (`Compaction`, in the checkpointed loop state), applies the record as it is wherever the prompt fits, and widens
 * it only when the prompt no longer fits the engine at hand. Widening leaves out enough turns to free half of what
 * the droppable turns could use, so the next few turns reuse the cached prefix instead of re-prefilling the whole
 * context after every turn.
 */
export interface Compaction {
  /** Turns left out, the oldest first. */
  readonly turns: number;
  /** SHA-256 of the messages left out: the record applies only to a conversation that begins with them. */
  readonly digest: string;
  /** What the model reads in their place, kept as recorded so the prompt is the same on every build. */
  readonly note: string;
}

export interface Fitted {
  readonly messages: ChatMessage[];
  /** The compaction applied: the recorded one, a wider one, or none. */
  readonly compaction?: Compaction;
  /** True when `compaction` is new (the caller records it and says so). */
  readonly widened: boolean;
  /** The prompt's tokens, where counted. */
  readonly tokens?: number;
}

export interface FitOptions {
  /** Prompt tokens the context leaves for the prompt (its size less the reply's budget). */
  readonly room: number;
  /** The prompt tokens of messages as this engine renders them; absent where the engine cannot count (the record is then applied, never widened). */
  readonly count?: (messages: readonly ChatMessage[]) => Promise<number>;
  readonly recorded?: Compaction | undefined;
}

/** The note the model reads in place of `turns` left-out turns. */
export function compactionNote(turns: number): string {
  return `(The first ${turns} ${turns === 1 ? 'turn' : 'turns'} of this conversation are left out here: they no longer fit the context.)`;
}

/** `messages` as the model sees them with the recorded compaction, widened where they do not fit `room`. */
export async function fitToContext(messages: readonly ChatMessage[], options: FitOptions): Promise<Fitted> {
  const turns = new Turns(messages);
  const { recorded, count, room } = options;
  const current = recorded && recorded.turns <= turns.most && (await turns.digest(recorded.turns)) === recorded.digest ? recorded : undefined;
  const shown = current ? turns.without(current.turns, current.note) : [...messages];
  const keep: Fitted = { messages: shown, widened: false, ...(current ? { compaction: current } : {}) };
  if (!count) return keep;
  const tokens = await count(shown);
  const from = current?.turns ?? 0;
  if (tokens <= room || from >= turns.most) return { ...keep, tokens };

  const sizes = new Map<number, number>([[from, tokens]]);
  const size = async (n: number): Promise<number> => {
    let s = sizes.get(n);
    if (s === undefined) sizes.set(n, (s = await count(turns.without(n, compactionNote(n)))));
    return s;
  };
  // What stays whatever is left out (system, note, newest turn); the target frees half of what the rest may use.
  const floor = await size(turns.most);
  const target = floor >= room ? floor : floor + Math.floor((room - floor) / 2);
  const n = await smallest(from + 1, turns.most, async (k) => (await size(k)) <= target);
  const note = compactionNote(n);
  return { messages: turns.without(n, note), compaction: { turns: n, digest: await turns.digest(n), note }, widened: true, tokens: await size(n) };
}

/** A conversation cut into its leading system message and its turns. */
class Turns {
  readonly #messages: readonly ChatMessage[];
  readonly #system: ChatMessage | undefined;
  /** Where each turn begins: the index of its user message. */
  readonly #starts: number[];

  constructor(messages: readonly ChatMessage[]) {
    this.#messages = messages;
    this.#system = messages[0]?.role === 'system' ? messages[0] : undefined;
    this.#starts = messages.flatMap((m, i) => (m.role === 'user' ? [i] : []));
  }

  /** Turns that may be left out: all but the newest. */
  get most(): number {
    return Math.max(0, this.#starts.length - 1);
  }

  /** The messages with the first `n` turns left out and `note` at the end of the system message. */
  without(n: number, note: string): ChatMessage[] {
    if (n === 0) return [...this.#messages];
    const system: ChatMessage = this.#system ? { ...this.#system, content: `${this.#system.content}\n\n${note}` } : { role: 'system', content: note };
    return [system, ...this.#messages.slice(this.#starts[n])];
  }

  /** SHA-256 of the messages the first `n` turns (n ≥ 1) leave out, with anything between the system message and the first turn. */
  async digest(n: number): Promise<string> {
    const left = this.#messages.slice(this.#system ? 1 : 0, this.#starts[n]);
    return objectId(new TextEncoder().encode(JSON.stringify(left.map((m) => [m.role, m.content, m.name ?? null]))));
  }
}

/** The smallest k in [lo, hi] for which `ok` holds, `ok` being monotone; hi when none below it does. */
async function smallest(lo: number, hi: number, ok: (k: number) => Promise<boolean>): Promise<number> {
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (await ok(mid)) hi = mid;
    else lo = mid + 1;
  }
  return hi;
}
