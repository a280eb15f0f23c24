/**
 * The assistant's notes as the session's events show them: the outline its notes tool holds, replayed from the
 * tool's add, update and delete calls that succeeded (ids from add's results, as the tool numbered them), and filled
 * in from the notes that get calls returned. Pure and total: malformed arguments or outputs are skipped, never thrown.
 */
import type { SessionEvent } from '../../core/session/index.ts';
import { record } from './json.ts';

export interface NoteItem {
  id: number;
  title: string;
  body: string;
  children: NoteItem[];
}

export interface NotesView {
  /** The top-level notes, in the order they were added, each with its children. */
  notes: NoteItem[];
  /** Notes tool calls seen (0: the session never used the tool). */
  calls: number;
}

type Event = Pick<SessionEvent, 'type'> & Record<string, unknown>;

interface Note {
  title: string;
  body: string;
  parent: number | null;
  children: number[];
}

const int = (v: unknown): number | undefined => (Number.isInteger(v) ? (v as number) : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Replays the notes tool's calls in `events` (oldest first). */
export function notesView(events: readonly Event[]): NotesView {
  const calls = new Map<string, Record<string, unknown>>();
  const notes = new Map<number, Note>();
  const roots: number[] = [];
  let count = 0;

  const siblings = (parent: number | null): number[] => (parent === null ? roots : notes.get(parent)?.children ?? roots);
  const place = (id: number, title: string, body: string, parent: number | null): void => {
    const under = parent !== null && notes.has(parent) ? parent : null;
    notes.set(id, { title, body, parent: under, children: [] });
    siblings(under).push(id);
  };
  const remove = (id: number): void => {
    const note = notes.get(id);
    if (!note) return;
    const list = siblings(note.parent);
    list.splice(list.indexOf(id), 1);
    const drop = (n: number): void => {
      notes.get(n)?.children.forEach(drop);
      notes.delete(n);
    };
    drop(id);
  };

  for (const e of events) {
    if (e.type === 'tool-call' && e.tool === 'notes') {
      const args = record(e.args);
      if (!args) continue;
      count++;
      calls.set(String(e.callId), args);
    } else if (e.type === 'tool-result') {
      const args = calls.get(String(e.callId));
      if (!args) continue;
      calls.delete(String(e.callId));
      if (e.ok !== true) continue;
      const result = record(e.output);
      switch (args.op) {
        case 'add': {
          const id = int(result?.id);
          const title = str(args.title);
          if (id === undefined || title === undefined) break;
          remove(id); // an id seen twice (a history the tool never wrote) must not list a note twice
          place(id, title, str(args.body) ?? '', int(args.parent) ?? null);
          break;
        }
        case 'update': {
          const note = notes.get(int(args.id) ?? NaN);
          if (!note) break;
          note.title = str(args.title) ?? note.title;
          note.body = (str(args.body) ?? note.body) + (str(args.append) ?? '');
          break;
        }
        case 'delete': {
          const id = int(args.id);
          if (id !== undefined) remove(id);
          break;
        }
        case 'get': {
          // The tool's own copy of a note: it corrects whatever the replay got wrong or never saw.
          const id = int(result?.id);
          const title = str(result?.title);
          const body = str(result?.body);
          if (id === undefined || title === undefined || body === undefined) break;
          const note = notes.get(id);
          if (note) Object.assign(note, { title, body });
          else place(id, title, body, int(result?.parent) ?? null);
          break;
        }
      }
    }
  }
  const item = (id: number): NoteItem => {
    const n = notes.get(id)!;
    return { id, title: n.title, body: n.body, children: n.children.map(item) };
  };
  return { notes: roots.map(item), calls: count };
}

/** The outline flattened for a list view, each note with its depth (0: top level), in reading order. */
export function flattenNotes(notes: readonly NoteItem[], depth = 0): { note: NoteItem; depth: number }[] {
  return notes.flatMap((note) => [{ note, depth }, ...flattenNotes(note.children, depth + 1)]);
}
