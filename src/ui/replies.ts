/**
 * What an agent's reply adds to the transcript. A chat agent's reply is usually the text of the generation before it
 * (trimmed), sometimes with a note after it ("✓ Checked: the proposed diff applies cleanly"); the transcript already
 * shows that generation, so only the note is shown. A reply not built on the generation before it (a survey's
 * assembled draft, "No source could be read…") is shown whole.
 */
import type { SessionEvent } from '../core/session/index.ts';

/** The part of `reply` to show after `generation` (the text of the generation it answers, if any); '' for none. */
export function replyAddition(generation: string | null, reply: string): string {
  const text = reply.trim();
  const before = generation?.trim();
  if (!before) return text;
  if (text.startsWith(before)) return text.slice(before.length).trim();
  // The reply is the generation's answer without what followed it (a call the agent took out): nothing new.
  return before.startsWith(text) ? '' : text;
}

/** Follows a transcript's events in order: the generation a reply would build on (none after a reply). */
export class ReplyTracker {
  #generation: string | null = null;

  /** Takes the next event; for a reply, returns what it adds (see replyAddition), otherwise null. */
  next(event: Pick<SessionEvent, 'type'> & { text?: string; continues?: true }): string | null {
    // A piece that continues a cut generation extends it: the reply builds on the whole.
    if (event.type === 'generation') this.#generation = event.continues && this.#generation !== null ? this.#generation + (event.text ?? '') : (event.text ?? '');
    if (event.type !== 'reply') return null;
    const shown = replyAddition(this.#generation, event.text ?? '');
    this.#generation = null;
    return shown;
  }
}

/** What each reply of the steps shows, by step id and then by the reply's index in the step's events. */
export function replyViews(steps: readonly { id: string; events: readonly SessionEvent[] }[]): Map<string, Map<number, string>> {
  const tracker = new ReplyTracker();
  const out = new Map<string, Map<number, string>>();
  for (const step of steps) {
    step.events.forEach((event, i) => {
      const shown = tracker.next(event);
      if (shown === null) return;
      let views = out.get(step.id);
      if (!views) out.set(step.id, (views = new Map()));
      views.set(i, shown);
    });
  }
  return out;
}

/** What a reply streamed now adds, after the transcript's steps and the live turn's finished parts before it. */
export function liveReplyView(steps: readonly { events: readonly SessionEvent[] }[], done: readonly { text: string; reply?: true }[], reply: string): string {
  const tracker = new ReplyTracker();
  for (const step of steps) for (const event of step.events) tracker.next(event);
  for (const d of done) tracker.next(d.reply ? { type: 'reply', text: d.text } : { type: 'generation', text: d.text });
  return tracker.next({ type: 'reply', text: reply }) ?? '';
}
