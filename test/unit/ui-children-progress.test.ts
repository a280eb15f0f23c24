/**
 * The live turn's view of a step's forked children (src/ui/children-progress.ts), folded from the progress a job
 * reports: how many are done of how many, what each node has done and runs now, nodes that left, and — when no
 * other node could take them — that they run here and why. A later fork starts afresh; malformed progress from a
 * cloud run is refused by its schema before it reaches the fold.
 */
import * as v from 'valibot';
import { describe, expect, test } from 'vitest';
import { ChildProgressSchema, HERE, type ChildProgress } from '../../src/core/runtime/index.ts';
import { foldChildProgress, type ChildrenView } from '../../src/ui/children-progress.ts';

const fold = (events: ChildProgress[], from: ChildrenView | null = null) => events.reduce<ChildrenView | null>((view, p) => foldChildProgress(view, p), from)!;
const nodes: ChildProgress = {
  type: 'nodes',
  nodes: [
    { id: 'laptop', name: 'Laptop', kind: 'device', lanes: 1, speed: 40 },
    { id: 'cloud', name: 'embedded', kind: 'cloud', lanes: 2, speed: 200 },
  ],
  plan: { laptop: ['s1'], cloud: ['s2', 's3', 's4'] },
};
const start = (child: string, node: string, attempt = 1): ChildProgress => ({ type: 'child-start', child, session: `session-${child}`, node, attempt, input: attempt === 1 ? 'start' : 'resume' });
const done = (child: string, node: string, ok = true): ChildProgress => ({ type: 'child-done', child, node, ok, ms: 10 });

describe('the live view of forked children', () => {
  test('counts the parts done of the planned total, and what each node has done and runs now', () => {
    const view = fold([nodes, start('s1', 'laptop'), start('s2', 'cloud'), start('s3', 'cloud'), done('s2', 'cloud'), start('s4', 'cloud'), done('s3', 'cloud', false)]);
    expect(view).toMatchObject({ total: 4, done: 2, failed: 1, here: null, lost: [] });
    expect(view.nodes.map((n) => [n.name, n.done, n.running])).toEqual([['Laptop', 0, 1], ['embedded', 2, 1]]);
  });

  test('a node never shows more running than its lanes: its next child may start before the last one\'s end is read', () => {
    const view = fold([nodes, start('s1', 'laptop'), start('s2', 'cloud'), start('s3', 'cloud'), start('s4', 'cloud')]);
    expect(view.nodes.map((n) => [n.name, n.running])).toEqual([['Laptop', 1], ['embedded', 2]]);
    expect(fold([done('s2', 'cloud')], view).nodes.map((n) => [n.name, n.done, n.running])).toEqual([['Laptop', 0, 1], ['embedded', 1, 2]]);
  });

  test('a node that leaves: named once, its child no longer running there, and counted where it finished', () => {
    const view = fold([nodes, start('s1', 'laptop'), { type: 'node-lost', node: 'laptop', reason: 'tab closed' }, { type: 'child-requeued', child: 's1', node: 'laptop' }, { type: 'node-lost', node: 'laptop', reason: 'again' }, start('s1', 'cloud', 2), done('s1', 'cloud')]);
    expect(view.lost).toEqual(['Laptop']);
    expect(view.nodes.map((n) => [n.name, n.done, n.running])).toEqual([['Laptop', 0, 0], ['embedded', 1, 0]]);
    expect(view.done).toBe(1);
  });

  test('children run here: the count and the reason; a later fork starts afresh', () => {
    const here = fold([{ type: 'here', children: 12, reason: 'No node of this space can take the children.' }]);
    expect(here).toMatchObject({ total: 12, here: 'No node of this space can take the children.', nodes: [], done: 0 });
    expect(fold([done('s1', HERE), { type: 'child-done', child: 's2', node: HERE, ok: false, ms: 5 }], here)).toMatchObject({ total: 12, done: 2, failed: 1, nodes: [], here: 'No node of this space can take the children.' });
    const before = fold([nodes, start('s1', 'laptop'), done('s1', 'laptop')]);
    expect(fold([nodes], before)).toMatchObject({ total: 4, done: 0, nodes: [{ done: 0 }, { done: 0 }] });
    expect(before.done).toBe(1); // the fold never changes what it was given
  });

  test('progress from a cloud run is checked before it is shown', () => {
    expect(v.safeParse(ChildProgressSchema, nodes).success).toBe(true);
    for (const bad of [{ type: 'nodes', nodes: [] }, { type: 'child-done', child: 's1', node: 'x', ok: 'yes', ms: 1 }, { type: 'here', children: -1, reason: '' }, { type: 'unknown' }]) {
      expect(v.safeParse(ChildProgressSchema, bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
