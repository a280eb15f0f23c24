/**
 * The checkpoint tree's one-line summaries: what the person said, else what the step's tools did in words (one phrase
 * per tool and operation, its targets listed; a patch names the files its diff touches), else the agent's words.
 */
import { describe, expect, test } from 'vitest';
import type { Checkpoint, SessionEvent } from '../../../src/core/session/index.ts';
import { summarize, toolActions } from '../../../src/core/session/tree.ts';

const at = 0;
const call = (tool: string, args: unknown): SessionEvent => ({ type: 'tool-call', callId: `c${Math.random()}`, tool, args: typeof args === 'string' ? args : JSON.stringify(args), at });
const result = (ok: boolean): SessionEvent => ({ type: 'tool-result', callId: 'c', ok, output: '{}', at });
const step = (...events: SessionEvent[]): Pick<Checkpoint, 'events' | 'parent'> => ({ events, parent: 'p'.repeat(64) as Checkpoint['parent'] });

describe('summarize', () => {
  test('a tool step says what its calls did, grouped by tool and operation', () => {
    expect(summarize(step(call('workspace', { op: 'write', path: 'src/math.ts' }), call('workspace', { op: 'write', path: 'README.md' })))).toBe('workspace: wrote src/math.ts, README.md');
    expect(summarize(step(call('notes', { op: 'add', title: 'Intro' }), call('docs', { op: 'search', query: 'ferry crossings' })))).toBe('notes: added “Intro”; docs: searched “ferry crossings”');
    expect(summarize(step(call('workspace', { op: 'list' })))).toBe('workspace: listed');
  });

  test('a patch names the files of its diff; a dry run is a check', () => {
    const diff = '--- a/src/a.ts\n+++ b/src/a.ts\n@@ -1 +1 @@\n-x\n+y\n--- /dev/null\n+++ b/NEW.md\n@@ -0,0 +1 @@\n+hi\n';
    expect(toolActions([{ tool: 'workspace', args: JSON.stringify({ op: 'patch', diff }) }])).toBe('workspace: patched src/a.ts, NEW.md');
    expect(toolActions([{ tool: 'workspace', args: JSON.stringify({ op: 'patch', diff, dry_run: true }) }])).toBe('workspace: checked src/a.ts, NEW.md');
  });

  test('arguments that are not a JSON object, or an unknown operation, still name the tool', () => {
    expect(toolActions([{ tool: 'js', args: 'not json' }])).toBe('js: called');
    expect(toolActions([{ tool: 'js', args: JSON.stringify({ code: '1+1' }) }])).toBe('js: called');
    expect(toolActions([{ tool: 'x', args: JSON.stringify({ op: 'frobnicate', id: 7 }) }])).toBe('x: frobnicate 7');
  });

  test('a failed call in the step is said; results alone say whether they failed; the person and the agent come first', () => {
    expect(summarize(step(call('workspace', { op: 'read', path: 'a.ts' }), result(false)))).toBe('workspace: read a.ts (a call failed)');
    expect(summarize(step(result(true), result(false)))).toBe('Tool results (some failed)');
    expect(summarize(step(result(true)))).toBe('Tool results (ok)');
    expect(summarize(step({ type: 'user', text: 'Hi', at }, call('notes', { op: 'list' })))).toBe('You: Hi');
    expect(summarize(step(result(true), { type: 'reply', text: 'Done.', at }))).toBe('Agent: Done.');
    expect(summarize({ events: [], parent: null })).toBe('Session started');
  });
});
