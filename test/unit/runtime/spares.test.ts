/**
 * Spare instances (runtime/spares.ts): a run takes the spare of its build instead of instantiating on its critical
 * path, only when nothing is granted; a spare is used once; the pool stays bounded and releases what it drops.
 */
import { describe, expect, it } from 'vitest';
import type { Grants, LoadedComponent } from '../../../src/core/runtime/index.ts';
import { Spares } from '../../../src/core/runtime/spares.ts';

const build = (id: string): LoadedComponent => ({ id }) as LoadedComponent;

function pool(): { spares: Spares<{ id: string; n: number }>; started: string[]; released: number[] } {
  const started: string[] = [];
  const released: number[] = [];
  let n = 0;
  const spares = new Spares(
    async (component: LoadedComponent, grants: Grants) => {
      started.push(`${component.id}${Object.keys(grants).length > 0 ? '+grants' : ''}`);
      return { id: component.id, n: n++ };
    },
    (spare) => void released.push(spare.n),
  );
  return { spares, started, released };
}

describe('spare instances', () => {
  it('hands out the spare of the build once, then starts fresh ones; grants always start fresh', async () => {
    const { spares, started } = pool();
    spares.refill([build('a')]);
    expect(started).toEqual(['a']);
    expect(await spares.take(build('a'), {})).toEqual({ id: 'a', n: 0 });
    expect(await spares.take(build('a'), {})).toEqual({ id: 'a', n: 1 });
    spares.refill([build('a')]);
    expect(await spares.take(build('a'), { 'ferry:component/host': {} })).toEqual({ id: 'a', n: 3 });
    expect(started).toEqual(['a', 'a', 'a', 'a+grants']);
    expect(await spares.take(build('a'), {})).toEqual({ id: 'a', n: 2 });
  });

  it('keeps one spare per build for at most eight builds, releasing the oldest and, on dispose, the rest', async () => {
    const { spares, started, released } = pool();
    spares.refill([build('a'), build('a')]);
    expect(started).toEqual(['a']);
    spares.refill(Array.from({ length: 9 }, (_, i) => build(`b${i}`)));
    await spares.dispose();
    // The two oldest ("a", "b0") go as the pool passes eight builds; the eight others on dispose.
    expect(released.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(started).toHaveLength(10);
  });

  it('starts afresh when making the spare failed', async () => {
    let fail = true;
    const spares = new Spares(async (component: LoadedComponent) => {
      if (fail) throw new Error('no memory');
      return component.id;
    });
    spares.refill([build('a')]);
    fail = false;
    expect(await spares.take(build('a'), {})).toBe('a');
  });
});
