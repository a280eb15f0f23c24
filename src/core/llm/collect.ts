import { FerryError } from '../errors.ts';
import type { Engine, GenerateEvent, GenerateRequest } from './engine.ts';

export type DoneEvent = Extract<GenerateEvent, { type: 'done' }>;

/** Runs a generation to its end and returns its `done` event (the whole text, ids and stats). */
export async function generateAll(engine: Pick<Engine, 'generate'>, request: GenerateRequest, onToken?: (event: Extract<GenerateEvent, { type: 'token' }>) => void): Promise<DoneEvent> {
  let done: DoneEvent | undefined;
  for await (const event of engine.generate(request)) {
    if (event.type === 'token') onToken?.(event);
    else done = event;
  }
  if (!done) throw new FerryError('llm/no-result', 'The engine ended the generation without a result.');
  return done;
}
