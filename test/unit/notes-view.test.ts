/**
 * The Notes panel's replay (src/ui/panels/notes-view.ts): the assistant's outline is read from the notes tool's
 * calls and results in the session's events, in the tool's real output format (the built component's own results),
 * and survives malformed or failed calls (shows what could be read, never throws). Also which sessions get the panel.
 */
import { describe, expect, test } from 'vitest';
import type { SessionEvent, TranscriptStep } from '../../src/core/session/index.ts';
import { flattenNotes, notesView } from '../../src/ui/panels/notes-view.ts';
import { panelFor } from '../../src/ui/panels/index.ts';
import { invoke } from '../../components/notes/index.ts';

let at = 1;
let n = 0;
const call = (args: unknown, tool = 'notes'): SessionEvent => ({ type: 'tool-call', callId: `c${++n}`, tool, args: typeof args === 'string' ? args : JSON.stringify(args), at: at++ });
const result = (ok: boolean, output: string): SessionEvent => ({ type: 'tool-result', callId: `c${n}`, ok, output, at: at++ });
/** A call and the real notes component's answer to it (its module state is the tool's memory). */
const used = (args: unknown): SessionEvent[] => {
  const c = call(args);
  try {
    return [c, result(true, invoke(JSON.stringify(args)))];
  } catch (err) {
    return [c, result(false, String(err))];
  }
};
const step = (events: SessionEvent[]): TranscriptStep => ({ id: String(at).padEnd(64, '0'), at: at++, events });

describe('the notes panel', () => {
  test('replays adds (nested by parent), updates, appends and deletes as the tool applied them; failed calls change nothing', () => {
    const events = [
      ...used({ op: 'add', title: 'Trip', body: 'Plan the *harbour* trip.' }),
      ...used({ op: 'add', title: 'Packing', parent: 1 }),
      ...used({ op: 'add', title: 'Boots', body: 'waterproof', parent: 2 }),
      ...used({ op: 'add', title: 'Scratch' }),
      ...used({ op: 'update', id: 2, append: 'Rain gear.' }),
      ...used({ op: 'update', id: 1, title: 'Harbour trip' }),
      ...used({ op: 'delete', id: 4 }),
      ...used({ op: 'update', id: 99, body: 'refused' }),
      ...used({ op: 'add', title: '' }),
      ...used({ op: 'list' }),
      ...used({ op: 'render' }),
    ];
    const view = notesView(events);
    expect(view.calls).toBe(11);
    expect(view.notes).toEqual([
      { id: 1, title: 'Harbour trip', body: 'Plan the *harbour* trip.', children: [{ id: 2, title: 'Packing', body: 'Rain gear.', children: [{ id: 3, title: 'Boots', body: 'waterproof', children: [] }] }] },
    ]);
    expect(flattenNotes(view.notes).map((r) => [r.note.title, r.depth])).toEqual([['Harbour trip', 0], ['Packing', 1], ['Boots', 2]]);
    // Deleting a note takes its subtree with it, as the tool does.
    expect(notesView([...events, ...used({ op: 'delete', id: 2 })]).notes).toEqual([{ id: 1, title: 'Harbour trip', body: 'Plan the *harbour* trip.', children: [] }]);
  });

  test('a get result fills in a note the replay never saw; other tools, unanswered calls and bad JSON are skipped', () => {
    const view = notesView([
      call({ op: 'get', id: 7 }), result(true, JSON.stringify({ id: 7, parent: null, title: 'Seen by get', body: 'b', children: [] })),
      call({ op: 'add', title: 'Elsewhere' }, 'workspace'), result(true, '{"id":8}'),
      call({ op: 'add', title: 'Never answered' }),
      call('{not json'), result(true, '{"id":9}'),
      call({ op: 'add', title: 'Odd output' }), result(true, 'not json'),
    ]);
    expect(view.notes).toEqual([{ id: 7, title: 'Seen by get', body: 'b', children: [] }]);
    expect(view.calls).toBe(3);
    expect(notesView([]).notes).toEqual([]);
  });

  test('a session of unknown template gets the Notes panel when its events call the notes tool (and no other panel fits)', () => {
    const noted = [step([call({ op: 'add', title: 'x' }), result(true, '{"id":1}')])];
    expect(panelFor('unknown', noted)).toBe('notes');
    expect(panelFor(undefined, noted)).toBe('notes');
    expect(panelFor('unknown', [step([call({ op: 'list' }, 'docs')])])).toBeNull();
    // A survey takes notes too: its draft wins.
    expect(panelFor('unknown', [...noted, step([{ type: 'reply', text: '# T\n## 1. One\nText [1]\n## References\n[1] Ref', at: at++ }])])).toBe('draft');
  });
});
