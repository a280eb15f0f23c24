/**
 * The turn in flight, as the session screen shows it until the step's checkpoint is read back from the store: the
 * message sent, the generations and replies finished in this run, the generation streaming now, tool calls, and a
 * step's forked children. Built from the session's runner events one at a time (plain data in, plain data out), so
 * it reads the same whether the session runs here or elsewhere; `place` only labels where each part was written.
 */
import * as v from 'valibot';
import type { RunnerEvent } from '../core/host/index.ts';
import { ChildProgressSchema } from '../core/runtime/index.ts';
import type { Placement } from '../browser/placement.ts';
import { foldChildProgress, type ChildrenView } from './children-progress.ts';

/** Where a part of the turn was written, for people: its place's name, and whether that was this device. */
export interface Place {
  name: string;
  here: boolean;
}

export interface LiveTurn {
  /** The message sent, until the checkpoint holding it is read back. */
  user: string | null;
  /** Generations and replies (what a reply adds: replies.ts) finished in this run but not yet shown from the store. */
  done: { text: string; place: Place; reply?: true }[];
  /** The generation streaming now. */
  text: string;
  place: Place;
  tools: { callId: string; tool: string; args: string; ok?: boolean }[];
  /** A step's forked children running now (on the space's nodes, or here one by one); null when none. */
  children: ChildrenView | null;
}

export const HERE_PLACE: Place = { name: 'this device', here: true };

export const IDLE: LiveTurn = { user: null, done: [], text: '', place: HERE_PLACE, tools: [], children: null };

export function placeOf(p: Placement): Place {
  return p.state === 'here' || p.state === 'returning' ? HERE_PLACE : { name: p.name === 'Cloud worker' ? 'cloud worker' : p.name, here: false };
}

/**
 * The turn after one event (tokens are added by the caller, once per frame). `reply` says what a reply adds to the
 * transcript before it. Events that do not change the turn return it as it was.
 */
export function foldEvent(live: LiveTurn, event: RunnerEvent, place: Place, reply: (text: string) => string): LiveTurn {
  switch (event.type) {
    case 'generation':
      return { ...live, done: [...live.done, { text: live.text, place }], text: '' };
    case 'reply': {
      const shown = reply(event.text);
      return shown ? { ...live, done: [...live.done, { text: shown, place, reply: true }] } : live;
    }
    case 'tool-call':
      return { ...live, tools: [...live.tools, { callId: event.callId, tool: event.tool, args: event.args }] };
    case 'tool-result':
      return { ...live, tools: live.tools.map((t) => (t.callId === event.callId ? { ...t, ok: event.ok } : t)) };
    case 'child-progress': {
      // Progress from elsewhere came over the network: only well-formed progress is shown.
      const progress = v.safeParse(ChildProgressSchema, event.progress);
      // The parent waits on its children (nothing streams meanwhile): the turn is where they report from.
      return progress.success ? { ...live, place, children: foldChildProgress(live.children, progress.output) } : live;
    }
    default:
      return live;
  }
}

/** The turn once the store holds what it showed: the parts counted then (`shown`, `tools`) give way to the transcript. */
export function caughtUp(live: LiveTurn, shown: number, tools: number): LiveTurn {
  return { ...live, user: null, done: live.done.slice(shown), tools: live.tools.slice(tools) };
}
