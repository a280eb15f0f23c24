/**
 * Which tab of this browser runs a session, and what the other tabs hear of it. The tab that runs a session holds
 * its Web Lock (`ferry-session:<id>`) for as long as it has the session's runner; the browser lets go of a lock when
 * its tab closes or crashes, so a tab waiting for it (`whenFree`) then takes the session over from the store, which
 * holds everything acknowledged. Tabs talk over one BroadcastChannel: the running tab says what happens (runs
 * starting and ending, their events, where the session runs); the others ask it to run a message they saved as the
 * session's pending input, to stop, or to let the session go. What to do with them is other-tabs.ts's business:
 * this module only carries them, and holds and waits for the locks.
 */
import type { SerializedError } from '../core/errors.ts';
import type { RunnerEvent } from '../core/host/index.ts';
import type { Placement } from './placement.ts';

/** Tabs of another build of Ferry (an update loaded in one tab only) speak another version: their messages are ignored. */
const PROTOCOL = 1;
const CHANNEL = 'ferry-session-tabs';

export type TabMessage =
  /** A tab opened the session: the tab running it says where it runs, and the run going on if there is one. */
  | { type: 'hello'; session: string }
  /** A run of the session began in the running tab (`text`: the message it runs, if it is one). */
  | { type: 'run'; session: string; text: string | null }
  | { type: 'idle'; session: string }
  | { type: 'event'; session: string; event: RunnerEvent; placement: Placement }
  | { type: 'placement'; session: string; placement: Placement }
  /** Run `text`, which the asking tab has saved as the session's pending input; answered by `done` with `request`. */
  | { type: 'send'; session: string; request: string; text: string }
  | { type: 'done'; session: string; request: string; error?: SerializedError }
  | { type: 'stop'; session: string }
  /** The session was deleted in the asking tab: the running tab stops it and lets it go. */
  | { type: 'release'; session: string };

const TYPES: ReadonlySet<string> = new Set<TabMessage['type']>(['hello', 'run', 'idle', 'event', 'placement', 'send', 'done', 'stop', 'release']);

/** A message of this build's protocol, or undefined (another build's, or not one of ours). */
function readMessage(data: unknown): TabMessage | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const m = data as { v?: unknown; type?: unknown; session?: unknown };
  return m.v === PROTOCOL && typeof m.type === 'string' && TYPES.has(m.type) && typeof m.session === 'string' ? (data as TabMessage) : undefined;
}

export class SessionTabs {
  readonly #channel: BroadcastChannel | undefined;
  /** Absent outside a secure context (a page over plain HTTP on a LAN address): each tab then runs its sessions alone. */
  readonly #locks: LockManager | null;
  /** The sessions whose lock this tab holds, each with the call that lets it go and the lock's request (settled once let go). */
  readonly #held = new Map<string, { letGo(): void; request: Promise<unknown> }>();
  /** Sessions this tab waits to take over, resolved once it holds their lock. */
  readonly #waiting = new Map<string, Promise<void>>();

  constructor(onMessage: (message: TabMessage) => void, locks: LockManager | null = globalThis.navigator?.locks ?? null) {
    this.#locks = locks;
    if (!locks) return;
    this.#channel = new BroadcastChannel(CHANNEL);
    this.#channel.onmessage = (e: MessageEvent<unknown>) => {
      const message = readMessage(e.data);
      if (message) onMessage(message);
    };
  }

  /** Whether this tab holds the session's lock (it runs the session, or may). */
  owns(session: string): boolean {
    return this.#held.has(session);
  }

  /** Takes the session's lock unless another tab holds it; true when this tab holds it now. */
  async take(session: string): Promise<boolean> {
    const locks = this.#locks;
    if (!locks || this.#held.has(session)) return true;
    return new Promise<boolean>((resolve, reject) => {
      const request: Promise<unknown> = locks.request(lockName(session), { ifAvailable: true }, (lock): Promise<void> | undefined => {
        resolve(lock !== null);
        return lock ? this.#hold(session, request) : undefined;
      });
      request.catch(reject);
    });
  }

  /** Whether another tab holds the session's lock now. */
  async heldElsewhere(session: string): Promise<boolean> {
    if (!this.#locks || this.#held.has(session)) return false;
    const { held = [] } = await this.#locks.query();
    return held.some((l) => l.name === lockName(session));
  }

  /** Resolves once this tab holds the session's lock: at once if no tab does, else when the tab holding it lets go, closes or crashes. */
  whenFree(session: string): Promise<void> {
    const locks = this.#locks;
    if (!locks || this.#held.has(session)) return Promise.resolve();
    let waiting = this.#waiting.get(session);
    if (!waiting) {
      waiting = new Promise<void>((resolve, reject) => {
        const request: Promise<unknown> = locks.request(lockName(session), (): Promise<void> => {
          this.#waiting.delete(session);
          resolve();
          return this.#hold(session, request);
        });
        request.catch(reject);
      });
      this.#waiting.set(session, waiting);
    }
    return waiting;
  }

  /** Lets the session's lock go (it was deleted here): another tab may run it. Resolves once the lock is free. */
  async release(session: string): Promise<void> {
    const held = this.#held.get(session);
    if (!held) return;
    this.#held.delete(session);
    held.letGo();
    await held.request.catch(() => undefined);
  }

  post(message: TabMessage): void {
    try {
      this.#channel?.postMessage({ v: PROTOCOL, ...message });
    } catch {
      // Something in it cannot be cloned: the other tabs miss this one, and read the store at the next checkpoint.
    }
  }

  #hold(session: string, request: Promise<unknown>): Promise<void> {
    return new Promise<void>((letGo) => this.#held.set(session, { letGo, request }));
  }
}

function lockName(session: string): string {
  return `ferry-session:${session}`;
}
