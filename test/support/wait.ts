/**
 * The one way tests wait: poll a condition until it holds, with a deadline that only bounds a test that would
 * otherwise hang (never a timing assertion). Works in Node and in the browser.
 */
export interface WaitOptions {
  /** How long before giving up; default 60 s. */
  timeoutMs?: number;
  /** Between polls; default 10 ms. */
  intervalMs?: number;
}

/** Resolves with the first truthy value `probe` returns; rejects with `what` in the message past the deadline. */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 10));
  }
}
