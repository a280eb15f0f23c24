/**
 * A reply cut by a move (or a stop followed by a resume) is recorded in pieces — the cut generation, then one that
 * `continues` it on the next host — but it is one reply: the transcript shows it as one message (the pieces' text and
 * tokens joined, the last piece's ending, the engines that wrote it), on the step of its first piece. While its
 * continuation is still streaming, the pieces so far lead the live reply instead, so the reply never restarts.
 */
import type { SessionEvent, TranscriptStep } from '../core/session/index.ts';

type Generation = Extract<SessionEvent, { type: 'generation' }>;

/** One reply as shown: the joined pieces. */
export interface GenerationView {
  text: string;
  tokens: number;
  finish: Generation['finish'];
  /** Engines that wrote it, in order, each once ("wllama", "node-llama-cpp"). */
  engines: string[];
  model: string;
}

export interface TranscriptView {
  /** For each step, the view of each generation event by its index; `null` for a piece shown with the one it continues. */
  generations: Map<string, Map<number, GenerationView | null>>;
  /** The reply the transcript ends in, when it was cut (a continuation may follow): where it is shown, and its text. */
  cut: { stepId: string; index: number; text: string } | null;
}

export function transcriptView(steps: readonly TranscriptStep[]): TranscriptView {
  const generations = new Map<string, Map<number, GenerationView | null>>();
  let open: { view: GenerationView; stepId: string; index: number } | null = null;
  for (const step of steps) {
    const views = new Map<number, GenerationView | null>();
    step.events.forEach((e, i) => {
      if (e.type !== 'generation') {
        // Anything but a reply between a cut and the next generation (a message, a tool call) ends the reply there.
        if (e.type !== 'reply') open = null;
        return;
      }
      if (e.continues && open) {
        open.view.text += e.text;
        open.view.tokens += e.tokens.length;
        open.view.finish = e.finish;
        if (!open.view.engines.includes(e.engine.id)) open.view.engines.push(e.engine.id);
        views.set(i, null);
      } else {
        open = { view: { text: e.text, tokens: e.tokens.length, finish: e.finish, engines: [e.engine.id], model: e.engine.model }, stepId: step.id, index: i };
        views.set(i, open.view);
      }
      if (open.view.finish !== 'abort') open = null;
    });
    generations.set(step.id, views);
  }
  const last = open as { view: GenerationView; stepId: string; index: number } | null;
  return { generations, cut: last ? { stepId: last.stepId, index: last.index, text: last.view.text } : null };
}
