/**
 * What "Where it runs" says about placement (src/ui/placement-line.ts) follows from the facts automatic placement acts
 * on: no move is reported that does not happen, and the reason is the one that decides (privacy before balance).
 */
import { describe, expect, test } from 'vitest';
import { placementLine, type PlacementFacts } from '../../src/ui/placement-line.ts';

const here = { state: 'here', name: 'This device' } as const;
const facts = (over: Partial<PlacementFacts>): PlacementFacts => ({
  privacy: 'my-devices',
  placement: here,
  measuredTps: 120,
  held: false,
  decision: { move: true, reason: 'Moved to embedded (best balance at $20/h of your time): 1.2 s vs 9.0 s on this device for 256 output tokens.' },
  ...over,
});

describe('the placement line', () => {
  test('a decision to move is what the next step will do, not a move that happened', () => {
    expect(placementLine(facts({}))).toBe('The next step moves to embedded (best balance at $20/h of your time): 1.2 s vs 9.0 s on this device for 256 output tokens.');
    expect(placementLine(facts({ decision: { move: false, reason: 'Stayed on this device: embedded would be 1.1 s (+2 s to move) vs 1.5 s for 256 output tokens, not enough to beat the 20% margin for moving.' } }))).toMatch(/^The next step stays on this device: embedded would be/);
  });

  test('"this device only" keeps it here for that reason, whatever the policy would weigh', () => {
    const line = placementLine(facts({ privacy: 'this-device', decision: { move: false, reason: 'Stayed on this device (best balance at $20/h of your time): 9.0 s for 256 output tokens (privacy: this device only).' } }));
    expect(line).toBe('Stays on this device: your privacy setting (this device only) keeps sessions here.');
    expect(line).not.toMatch(/balance/);
  });

  test('nothing measured here yet: it stays, though the policy would pick a measured node over an unknown one', () => {
    expect(placementLine(facts({ measuredTps: null }))).toMatch(/^Stays on this device for now: automatic placement compares it with other nodes as soon as a reply here measures/);
  });

  test('brought back by hand, it stays; away, moving or coming back, the line says where it is', () => {
    expect(placementLine(facts({ held: true }))).toMatch(/^Stays on this device: you brought it back/);
    expect(placementLine(facts({ placement: { state: 'away', name: 'Cloud worker' } }))).toMatch(/^Runs on Cloud worker\. /);
    expect(placementLine(facts({ placement: { state: 'away', name: 'Pixel' }, privacy: 'this-device' }))).toMatch(/^Runs on Pixel\. /);
    expect(placementLine(facts({ placement: { state: 'moving', name: 'Cloud worker' } }))).toMatch(/^Moving to Cloud worker/);
    expect(placementLine(facts({ placement: { state: 'returning', name: 'Cloud worker' } }))).toMatch(/^Coming back to this device/);
  });

  test('no node can take the step: the problem, as the policy words it', () => {
    expect(placementLine(facts({ decision: { problem: 'No node can run this step (…).' } }))).toBe('No node can run this step (…).');
  });
});
