/**
 * A reply cut by a move is one reply in the transcript (src/ui/transcript-view.ts): its pieces — the cut generation,
 * then the ones that continue it on the next host — show as one message on the first piece's step, with the whole
 * text, every token, the last piece's ending and each engine that wrote it; what a reply after it adds is measured
 * against the whole (replies.ts); and while a continuation streams, the transcript ends in the cut reply it leads.
 */
import { describe, expect, test } from 'vitest';
import type { SessionEvent, TranscriptStep } from '../../src/core/session/index.ts';
import { replyViews } from '../../src/ui/replies.ts';
import { transcriptView } from '../../src/ui/transcript-view.ts';

const at = 1;
const user = (text: string): SessionEvent => ({ type: 'user', text, at });
const gen = (text: string, engine: string, finish: 'stop' | 'length' | 'abort', continues = false): SessionEvent => ({
  type: 'generation',
  tokens: [...text].map((c) => c.charCodeAt(0)),
  text,
  engine: { id: engine, kind: 'native', model: 'm' },
  timings: { promptMs: 1, generateMs: 1 },
  finish,
  ...(continues ? { continues: true as const } : {}),
  at,
});
const step = (id: string, ...events: SessionEvent[]): TranscriptStep => ({ id, at, events });

describe('a reply cut in pieces by moves', () => {
  const steps = [
    step('a', user('Tell me a story.'), gen('Once upon ', 'wllama', 'abort')),
    step('b', gen('a time, a ferry ', 'node-llama-cpp', 'abort', true)),
    step('c', gen('crossed the bay.', 'wllama', 'stop', true), { type: 'reply', text: 'Once upon a time, a ferry crossed the bay.', at }),
  ];

  test('shows as one message on its first step: the whole text and tokens, the last ending, each engine once', () => {
    const view = transcriptView(steps);
    expect(view.generations.get('a')!.get(1)).toEqual({ text: 'Once upon a time, a ferry crossed the bay.', tokens: 42, finish: 'stop', engines: ['wllama', 'node-llama-cpp'], model: 'm' });
    expect(view.generations.get('b')!.get(0)).toBeNull();
    expect(view.generations.get('c')!.get(0)).toBeNull();
    expect(view.cut).toBeNull();
  });

  test('the reply after it adds nothing to the whole it repeats', () => {
    expect(replyViews(steps).get('c')!.get(1)).toBe('');
  });

  test('while its continuation streams, the transcript ends in the cut reply, shown where its first piece is', () => {
    expect(transcriptView(steps.slice(0, 2)).cut).toEqual({ stepId: 'a', index: 1, text: 'Once upon a time, a ferry ' });
  });

  test('a reply the person stopped stays stopped; a new message after it starts a new reply', () => {
    const stopped = [step('a', user('Go.'), gen('Half a', 'wllama', 'abort')), step('b', user('Something else.'), gen('Sure.', 'wllama', 'stop'))];
    const view = transcriptView(stopped);
    expect(view.generations.get('a')!.get(1)).toMatchObject({ text: 'Half a', finish: 'abort' });
    expect(view.generations.get('b')!.get(1)).toMatchObject({ text: 'Sure.', finish: 'stop' });
    expect(view.cut).toBeNull();
  });
});
