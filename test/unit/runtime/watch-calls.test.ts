/** The watch over a component's exports that tells a restore whether the instance has run since it was restored. */
import { describe, expect, it } from 'vitest';
import { watchCalls } from '../../../src/core/runtime/instance.ts';

describe('watchCalls', () => {
  it('sees a call at any depth, and a construction, but not a look', () => {
    let calls = 0;
    class Thing {
      constructor(readonly n: number) {}
    }
    const exports = watchCalls({ top: (x: number) => x + 1, iface: { inner: { deep: () => 'deep' } }, Thing }, () => calls++);
    expect(typeof exports.iface.inner.deep).toBe('function');
    expect(calls).toBe(0);
    expect(exports.top(1)).toBe(2);
    expect(calls).toBe(1);
    expect(exports.iface.inner.deep()).toBe('deep');
    expect(calls).toBe(2);
    expect(new exports.Thing(3).n).toBe(3);
    expect(calls).toBeGreaterThan(2);
    // The same proxy each time: identity holds across reads.
    expect(exports.iface).toBe(exports.iface);
  });

  it('hands out a frozen property as it is, and counts it as a call: calls through it cannot be seen', () => {
    let calls = 0;
    const fn = () => 'raw';
    const exports = watchCalls({ frozen: Object.freeze({ fn }) }, () => calls++);
    expect(exports.frozen.fn).toBe(fn);
    expect(calls).toBe(1);
  });
});
