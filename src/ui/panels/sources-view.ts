/**
 * The documents a session's docs tool holds, as its events show them: every `docs add` that succeeded (the agent's
 * or the person's), less those removed since. Pure and total: malformed arguments or outputs are skipped.
 */
import type { SessionEvent } from '../../core/session/index.ts';
import { record } from './json.ts';

export interface SessionSource {
  doc: number;
  title: string;
  source: string | null;
}

type Event = Pick<SessionEvent, 'type'> & Record<string, unknown>;

export function sessionSources(events: readonly Event[]): SessionSource[] {
  const calls = new Map<string, Record<string, unknown>>();
  const docs = new Map<number, SessionSource>();
  for (const e of events) {
    if (e.type === 'tool-call' && e.tool === 'docs') {
      const args = record(e.args);
      if (args) calls.set(String(e.callId), args);
    } else if (e.type === 'tool-result' && e.ok === true) {
      const args = calls.get(String(e.callId));
      const out = record(e.output);
      if (!args || !out) continue;
      if (args.op === 'add' && typeof out.doc === 'number') {
        docs.set(out.doc, { doc: out.doc, title: typeof out.title === 'string' ? out.title : `Document ${out.doc}`, source: typeof args.source === 'string' ? args.source : null });
      } else if (args.op === 'remove' && typeof out.removed === 'number') {
        docs.delete(out.removed);
      }
    }
  }
  return [...docs.values()];
}
