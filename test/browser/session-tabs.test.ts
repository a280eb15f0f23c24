/**
 * SessionTabs in Chromium: a session's Web Lock is held by one holder at a time, a waiting holder gets it when the
 * other lets go or its context ends (a terminated worker stands for a closed tab), and messages reach the other
 * holders while those of another protocol version are ignored. Web Locks and BroadcastChannel are per origin, so
 * two instances in one page behave as two tabs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SessionTabs, type TabMessage } from '../../src/browser/session-tabs.ts';
import { waitFor } from '../support/wait.ts';

let next = 0;
const sessionId = (): string => `tabs-test-${Date.now()}-${next++}`;
const opened: Worker[] = [];

afterEach(() => {
  for (const w of opened.splice(0)) w.terminate();
});

/** A worker holding the session's lock, as another tab would: resolves once it holds it. */
async function otherTabHolding(session: string): Promise<Worker> {
  const source = `navigator.locks.request(${JSON.stringify(`ferry-session:${session}`)}, () => { postMessage('held'); return new Promise(() => {}); });`;
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })));
  opened.push(worker);
  await new Promise<void>((resolve) => worker.addEventListener('message', () => resolve(), { once: true }));
  return worker;
}

describe('SessionTabs', () => {
  it('lets one tab hold a session; another waits for it and gets it once the first lets go', async () => {
    const s = sessionId();
    const one = new SessionTabs(() => undefined);
    const two = new SessionTabs(() => undefined);
    expect(await one.heldElsewhere(s)).toBe(false);
    expect(await one.take(s)).toBe(true);
    expect(await one.take(s)).toBe(true);
    expect(one.owns(s)).toBe(true);
    expect(await two.take(s)).toBe(false);
    expect(await two.heldElsewhere(s)).toBe(true);
    expect(await one.heldElsewhere(s)).toBe(false);

    let freed = false;
    const waiting = two.whenFree(s).then(() => (freed = true));
    // Asked twice, it waits once.
    expect(two.whenFree(s)).toBe(two.whenFree(s));
    expect(await two.take(s)).toBe(false);
    expect(freed).toBe(false);
    await one.release(s);
    await waiting;
    expect(two.owns(s)).toBe(true);
    expect(one.owns(s)).toBe(false);
    expect(await one.take(s)).toBe(false);
    await two.whenFree(s);
    await two.release(s);
    expect(await one.take(s)).toBe(true);
    await one.release(s);
  });

  it('gets the lock of a tab that closes (its context ends without letting go)', async () => {
    const s = sessionId();
    const tab = new SessionTabs(() => undefined);
    const other = await otherTabHolding(s);
    expect(await tab.heldElsewhere(s)).toBe(true);
    expect(await tab.take(s)).toBe(false);
    const freed = tab.whenFree(s);
    other.terminate();
    await freed;
    expect(tab.owns(s)).toBe(true);
    await tab.release(s);
  });

  it('without Web Locks (outside a secure context), lets every tab run its sessions alone, as before', async () => {
    const s = sessionId();
    const heard: TabMessage[] = [];
    const one = new SessionTabs((m) => heard.push(m), null);
    const two = new SessionTabs((m) => heard.push(m), null);
    expect(await one.take(s)).toBe(true);
    expect(await two.take(s)).toBe(true);
    expect(await two.heldElsewhere(s)).toBe(false);
    await two.whenFree(s);
    // They neither listen nor speak: a tab with locks hears only the message sent to all.
    const got: TabMessage[] = [];
    new SessionTabs((m) => got.push(m));
    one.post({ type: 'run', session: s, text: 'from a tab without locks' });
    const raw = new BroadcastChannel('ferry-session-tabs');
    raw.postMessage({ v: 1, type: 'idle', session: s });
    await waitFor('the message sent to all', () => got.length > 0, { timeoutMs: 10_000 });
    expect(got).toEqual([{ v: 1, type: 'idle', session: s }]);
    expect(heard).toEqual([]);
    raw.close();
  });

  it('carries messages to the other tabs, and ignores what is not of its protocol', async () => {
    const heard: TabMessage[] = [];
    const one = new SessionTabs(() => undefined);
    new SessionTabs((m) => heard.push(m));
    const raw = new BroadcastChannel('ferry-session-tabs');
    raw.postMessage({ v: 2, type: 'run', session: 's', text: 'from a newer build' });
    raw.postMessage({ v: 1, type: 'unknown', session: 's' });
    raw.postMessage({ v: 1, type: 'idle' });
    raw.postMessage('not an object');
    // Messages of one sender arrive in order: once this one is heard, the ones above have been read (and ignored).
    raw.postMessage({ v: 1, type: 'idle', session: 'last' });
    one.post({ type: 'run', session: 's', text: 'hello' });
    one.post({ type: 'placement', session: 's', placement: { state: 'away', name: 'Cloud worker' } });
    await waitFor('the three messages', () => heard.length >= 3, { timeoutMs: 10_000 });
    expect(heard).toHaveLength(3);
    expect(heard).toContainEqual({ v: 1, type: 'idle', session: 'last' });
    expect(heard).toContainEqual({ v: 1, type: 'run', session: 's', text: 'hello' });
    expect(heard).toContainEqual({ v: 1, type: 'placement', session: 's', placement: { state: 'away', name: 'Cloud worker' } });
    raw.close();
  });
});
