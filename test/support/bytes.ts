import { expect } from 'vitest';

/** Byte equality without vitest's element-by-element deep diff (seconds for a MiB). */
export function expectSameBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual, 'bytes missing').toBeDefined();
  expect(actual!.length).toBe(expected.length);
  const first = actual!.findIndex((b, i) => b !== expected[i]);
  expect(first, `first differing byte at ${first}`).toBe(-1);
}
