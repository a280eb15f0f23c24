/**
 * Waiting for something that happens on another side (a relay's log, a worker's socket) without a fixed sleep: the
 * check runs until it passes, up to a generous limit that holds on a busy machine.
 */
import { vi } from 'vitest';

export function eventually<T>(check: () => T | Promise<T>, timeoutMs = 30_000): Promise<T> {
  return vi.waitFor(check, { timeout: timeoutMs, interval: 50 });
}
