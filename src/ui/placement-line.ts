/**
 * What "Where it runs" says about placement, from the facts automatic placement acts on (browser/next-step.ts and
 * auto-placement.ts): where the session is, the privacy setting, whether this device's speed is measured, whether the
 * person brought it back by hand, and the policy's decision for the next step. It never reports a move that did not
 * happen, nor gives balance as the reason when the privacy setting alone keeps a session here.
 */
import type { Privacy } from '../core/placement/index.ts';

export interface PlacementFacts {
  privacy: Privacy;
  placement: { state: 'here' | 'away' | 'moving' | 'returning'; name: string };
  /** This device's measured decode rate for the session's model; null until a reply here measured it. */
  measuredTps: number | null;
  /** The person brought the session back by hand: automatic placement leaves it here while the page is open. */
  held: boolean;
  /** The policy's decision for the next step (its reason as the policy words it), or why no node can take it. */
  decision: { move: boolean; reason: string } | { problem: string };
}

/** The policy words a decision as done ("Moved to …"); before the step it is what will happen. */
const FUTURE: [RegExp, string][] = [
  [/^Moved to /, 'The next step moves to '],
  [/^Stayed on /, 'The next step stays on '],
  [/^Kept on /, 'The next step stays on '],
  [/^Placed on /, 'The next step runs on '],
];

export function placementLine(f: PlacementFacts): string {
  const { state, name } = f.placement;
  if (state === 'moving') return `Moving to ${name}: the session continues there.`;
  if (state === 'returning') return 'Coming back to this device: it checkpoints there, then continues here.';
  if (state === 'away') return `Runs on ${name}. Automatic placement decides only for sessions on this device: bring it back to have it decide again.`;
  if (f.privacy === 'this-device') return 'Stays on this device: your privacy setting (this device only) keeps sessions here.';
  if (f.held) return 'Stays on this device: you brought it back, so it does not move by itself while this page is open.';
  if (f.measuredTps === null) return "Stays on this device for now: automatic placement compares it with other nodes as soon as a reply here measures this device's speed.";
  if ('problem' in f.decision) return f.decision.problem;
  let line = f.decision.reason;
  for (const [past, future] of FUTURE) line = line.replace(past, future);
  return line;
}
