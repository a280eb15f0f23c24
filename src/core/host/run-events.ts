/**
 * A relay run's events as a follower reads them: the node's runtime events (RunHost streams them as they come) plus
 * the relay's and the node's own — `resumed` (the node opened the snapshot), `published` (a checkpoint reached the
 * snapshot), `reassigned` (the relay handed the run to another node), `error`. They crossed the network, so each is
 * checked before it is believed; one of a kind this build does not know is passed over.
 */
import * as v from 'valibot';
import { ChildProgressSchema } from '../runtime/child-progress.ts';
import type { RunnerEvent } from './session-runner.ts';

const text = v.string();
const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const code = v.pipe(v.string(), v.regex(/^[a-z0-9-]+\/[a-z0-9-]+$/));
const ErrorSchema = v.object({ code, message: text });

/** The runtime events a follower shows, as they travel. */
const RemoteRuntimeEventSchema = v.variant('type', [
  v.object({ type: v.literal('step'), step: count, input: v.picklist(['start', 'user-message', 'generation-result', 'tool-result', 'child-results']) }),
  v.object({ type: v.literal('token'), text, id: v.nullable(count) }),
  v.object({ type: v.literal('generation'), text, finishReason: v.picklist(['stop', 'length', 'cancelled']), tokens: v.array(count) }),
  v.object({ type: v.literal('tool-call'), callId: text, tool: text, args: text }),
  v.object({ type: v.literal('tool-result'), callId: text, tool: text, ok: v.boolean(), output: text }),
  v.object({ type: v.literal('reply'), text }),
  v.object({ type: v.literal('children'), results: v.array(v.object({ id: text, ok: v.boolean(), output: text })) }),
  v.object({ type: v.literal('child-progress'), progress: ChildProgressSchema }),
  v.object({ type: v.literal('done'), summary: text }),
  v.object({ type: v.literal('idle') }),
  v.object({ type: v.literal('paused'), reason: v.picklist(['cancelled', 'step-limit']) }),
  v.object({ type: v.literal('step-failed'), step: count, error: v.object({ name: v.literal('FerryError'), code, message: text }), restoredTo: text }),
  v.object({ type: v.literal('notice'), message: text }),
  v.object({ type: v.literal('error'), ...ErrorSchema.entries }),
]);

/** The events that say where the run is rather than what the agent does. */
const ControlEventSchema = v.variant('type', [
  v.object({ type: v.literal('published'), version: count }),
  v.object({ type: v.literal('reassigned'), name: v.optional(text) }),
  /** The node's own checkpoint: not in this device's store until the `published` after it has been copied here. */
  v.object({ type: v.literal('checkpoint'), step: count, id: text }),
]);

export type RunControl = v.InferOutput<typeof ControlEventSchema>;

export type ReadRunEvent = { kind: 'event'; event: RunnerEvent } | { kind: 'control'; control: RunControl } | { kind: 'unknown' };

/** One run event from the relay, checked: an event to pass on, a control event for the follower, or neither. */
export function readRunEvent(raw: unknown): ReadRunEvent {
  const control = v.safeParse(ControlEventSchema, raw);
  if (control.success) return { kind: 'control', control: control.output };
  const event = v.safeParse(RemoteRuntimeEventSchema, raw);
  if (event.success) return { kind: 'event', event: event.output as RunnerEvent };
  return { kind: 'unknown' };
}
