/**
 * A forked child as a session of its own (DESIGN §7): the parent's agent and tool components, fresh, in a session
 * created here and published under its own snapshot and key, so any node of the space can run it — and, when that
 * node goes, another can resume it from the last checkpoint it published. Its result is read back from that
 * snapshot, never from what one attempt happened to say, so it is the same whichever node finished it.
 */
import { FerryError } from '../errors.ts';
import { publishSession, fetchSnapshot, type RelayHttp } from '../protocol/index.ts';
import { readHostState } from '../runtime/checkpoint.ts';
import type { LoopState } from '../runtime/loop.ts';
import { AgentRuntime, type ChildContext, type RuntimeSetup } from '../runtime/runtime.ts';
import type { SubTask } from '../runtime/wit.ts';
import { Session, type SessionInit } from '../session/index.ts';
import type { Store } from '../store/index.ts';

/** What creating a child session needs of the parent's setup: its components, its engine's model, its sampling. */
export type ChildSetup = Pick<RuntimeSetup, 'engine' | 'load' | 'sampling' | 'grants' | 'now'>;

export interface ChildSession {
  readonly task: SubTask;
  readonly sessionId: string;
  readonly snapshotId: string;
  readonly writeToken: string;
  readonly key: Uint8Array;
  /** The snapshot's version as created: a later one means the child's task is in a published checkpoint. */
  readonly startVersion: number;
}

/** Where a child stands on the relay. `state` is absent until it has published a checkpoint of its own. */
export interface ChildStanding {
  readonly version: number;
  readonly state?: LoopState;
  /** What the child's steps have cost on paid nodes so far, micro-dollars (its head's counter). */
  readonly costMicros?: number;
}

/**
 * Makes the job's child sessions in `store` and publishes each under its own snapshot and key. The first is made
 * from fresh components (AgentRuntime.create: they load and instantiate as they would to run); every child starts
 * from that same state, so the others are copies of its first checkpoint under new session ids — no component is
 * instantiated again (a QuickJS component takes 0.1–0.2 s to start in a phone's worker, per component, per child).
 */
export class ChildSessionMaker {
  #template: Promise<SessionInit> | undefined;

  constructor(
    private readonly store: Store,
    private readonly setup: ChildSetup,
    private readonly context: ChildContext,
    private readonly relay: RelayHttp,
  ) {}

  /** A child session holding `task`'s first checkpoint (the task not yet given), published. */
  async make(task: SubTask): Promise<ChildSession> {
    const template = await (this.#template ??= this.#firstCheckpoint());
    const session = await Session.create(this.store, { ...template, ...(this.setup.now ? { now: this.setup.now() } : {}) });
    const published = await publishSession(this.store, session.id, this.relay);
    return { task, sessionId: session.id, snapshotId: published.snapshot.id, writeToken: published.writeToken, key: published.key, startVersion: published.snapshot.version };
  }

  /**
   * Makes `tasks`' sessions one at a time in the background, in task order — the first children can start while
   * later ones are still being made — moving a child that some node asks for to the front. Once `signal` is
   * aborted (the job is over), those not made yet are refused.
   */
  inBackground(tasks: readonly SubTask[], signal: AbortSignal): { get(id: string): Promise<ChildSession> } {
    const waiting = [...tasks];
    const made = new Map(tasks.map((t) => [t.id, deferred<ChildSession>()] as const));
    // Each is awaited by the attempt that needs it; one never asked for must not be an unhandled rejection.
    for (const slot of made.values()) slot.promise.catch(() => undefined);
    void (async () => {
      for (let task = waiting.shift(); task; task = waiting.shift()) {
        const slot = made.get(task.id)!;
        if (signal.aborted) slot.reject(new FerryError('parallel/aborted', 'The job ended before this child session was made.'));
        else await this.make(task).then(slot.resolve, slot.reject);
      }
    })();
    return {
      get(id) {
        const at = waiting.findIndex((t) => t.id === id);
        if (at > 0) waiting.unshift(...waiting.splice(at, 1));
        return made.get(id)!.promise;
      },
    };
  }

  /** A fresh session's first checkpoint, as the state every child session starts from. */
  async #firstCheckpoint(): Promise<SessionInit> {
    const runtime = await AgentRuntime.create(this.store, this.setup, { agent: this.context.agent, tools: this.context.tools });
    await runtime.dispose();
    const { session, head } = runtime;
    const checkpoint = await session.checkpoint(head);
    const components: Record<string, Uint8Array> = {};
    for (const name of Object.keys(checkpoint.components)) components[name] = await session.component(head, name);
    return { llm: checkpoint.llm, components };
  }
}

/**
 * Fetches what the child has published after version `since` (which `store` already holds) and reads its loop state
 * at the head. Never its KV cache: the parent only reads the child's state, it does not run it.
 */
export async function childStanding(store: Store, child: ChildSession, relay: RelayHttp, since = child.startVersion): Promise<ChildStanding> {
  const fetched = await fetchSnapshot(relay, child.snapshotId, child.key, store, { engine: null, since });
  const version = fetched.snapshot.version;
  if (version <= child.startVersion) return { version };
  const session = await Session.open(store, child.sessionId);
  const head = await session.head();
  const host = await readHostState(session, head);
  return { version, state: host.loop, costMicros: (await session.checkpoint(head)).counters.costMicros };
}

/** Promise.withResolvers, which Node 20 lacks. */
function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(reason: unknown): void } {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
