/**
 * Moves a live agent session between this device's agent worker and the relay's cloud worker, and back, without
 * stopping its stream (DESIGN §4 "mid-generation moves", §6 runs):
 *
 * - to the cloud: the local run is cancelled — a generation in flight is cut, and the cut (prompt + the token ids
 *   so far) is checkpointed in the loop state; the session is exported, published (encrypted; only objects the
 *   relay lacks travel) and resumed on the cloud worker with `resume`, which first continues the cut generation
 *   from those ids. The cloud run's events stream back to `onEvent`.
 * - in the cloud: every checkpoint the run publishes is copied into this device's store (`sync`) before its
 *   `published` event is passed on, so the transcript and the tree follow the cloud live. Stop hands the run back
 *   (it checkpoints and publishes) while the session stays in the cloud; the next message starts a new run.
 * - back: the cloud run is stopped (it cuts its own generation the same way, checkpoints and publishes), the
 *   snapshot is fetched, the agent worker reopens it and resumes locally.
 * - across a reload: what it takes to follow and bring the session back (the snapshot, its write token and key, the
 *   run and the next event to read) goes to `persist`; `resumeCloud` picks it up again and catches up from there.
 *
 * With greedy decoding and the same model file, the session's token ids are the ones of a run that never moved.
 */
import * as v from 'valibot';
import { FerryError, isFerryError, type ErrorCode } from '../core/errors.ts';
import type { AgentStatus } from '../core/runtime/agent-api.ts';
import type { RunInput } from '../core/runtime/loop.ts';
import type { RuntimeEvent } from '../core/runtime/runtime.ts';
import { exportSession, importSession } from '../core/snapshot/index.ts';
import { RunPlacementSchema, type RunPlacement } from '../core/protocol/index.ts';
import { createMemoryStore } from '../core/store/index.ts';
import { restorePublished, serializePublished, type PublishedSnapshot, type RelayClient, type RunMessage, type RunRecord } from './relay-client.ts';

export type Placement = 'device' | 'moving-to-cloud' | 'cloud' | 'bringing-back';

/** A cloud run's event as the relay streams it (the runtime's events, plus `resumed`, `published`, `error`). */
export type CloudEvent = RunMessage['event'];

export type PlacedEvent = { where: 'device'; event: RuntimeEvent } | { where: 'cloud'; event: CloudEvent };

/** A session in the cloud, as a reload needs it. Holds secrets (the write token and key): keep it on this device. */
export interface CloudState {
  published: PublishedSnapshot;
  /** Where its runs go: absent = the relay's cloud workers; otherwise a node of the user's space (RunPlacement). */
  where?: RunPlacement;
  /** The name of the device of the space it runs on (absent: a cloud worker). */
  name?: string;
  /** The run to follow and the seq of its first event not yet applied here; null while no run goes on. */
  run: { id: string; from: number } | null;
}

/** What the mover needs of this device's agent worker (the page's AgentClient; Node's AgentThread fits too). */
export interface MoverAgent {
  send(input: RunInput): Promise<AgentStatus>;
  cancel(): Promise<void>;
  exportSession(): Promise<Uint8Array>;
  /** Hears every event of every run; may return the call that stops it. */
  subscribe(listener: (event: RuntimeEvent) => void): Promise<(() => void) | void>;
}

export interface SessionMoverOptions {
  agent: MoverAgent;
  relay: RelayClient;
  /** Starts the agent worker again on a session file, with the components and engine it ran before. */
  reopen(file: Uint8Array): Promise<AgentStatus>;
  /** Every event of the session, wherever it runs. */
  onEvent(event: PlacedEvent): void;
  onPlacement?(placement: Placement): void;
  /** Copies the snapshot's newest checkpoints into this device's store (a cloud run published one). */
  sync?(published: PublishedSnapshot): Promise<void>;
  /** Keeps where the session is for a reload: its cloud state while away, null once it is back. */
  persist?(state: CloudState | null): Promise<void>;
  /** The reply length a run started from here gets (this device's Settings); absent: the session's recorded one. */
  replyTokens?(): number;
}

/** A lost event stream is followed again this many times (waiting 0.5, 1, 2, 4 s between), then reported. */
const FOLLOW_RETRIES = 4;

interface FollowedRun {
  id: string;
  /** Settles once the run has ended and every event of it has been handled here. */
  followed: Promise<void>;
  ended: boolean;
  abort: AbortController;
  /** Set when the relay failed it because its node left: a run pinned there is not moved on by the relay. */
  nodeLeft?: true;
}

export class SessionMover {
  #placement: Placement = 'device';
  /** The local run in flight, if any. */
  #local: Promise<AgentStatus> | undefined;
  #published: PublishedSnapshot | undefined;
  /** Where its runs go while it is away (a device node of the space, or any cloud worker when absent). */
  #where: RunPlacement | undefined;
  /** The name of the space's device it is away on (undefined: a cloud worker). */
  #name: string | undefined;
  #run: FollowedRun | undefined;
  /** Cloud events are handled one after another: a `published` event waits for its sync, and so do the ones after it. */
  #events: Promise<void> = Promise.resolve();
  #subscribed = false;
  #unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: SessionMoverOptions) {}

  get placement(): Placement {
    return this.#placement;
  }

  /** The snapshot the session was last published to, once it has moved. */
  get published(): PublishedSnapshot | undefined {
    return this.#published;
  }

  /** The space's device the session is away on, by name; undefined here or on a cloud worker. */
  get awayOn(): string | undefined {
    return this.#placement === 'device' ? undefined : this.#name;
  }

  /** Whether a run is going on, here or in the cloud. */
  get running(): boolean {
    return this.#local !== undefined || this.cloudRunning;
  }

  /** Whether a cloud run is going on (its events are being followed). */
  get cloudRunning(): boolean {
    return this.#run !== undefined && !this.#run.ended;
  }

  /** Runs `input` where the session is: in the agent worker, or as a new run on the cloud worker. */
  async send(input: RunInput): Promise<void> {
    if (this.#placement === 'device') {
      await this.#subscribe();
      await this.#track(this.opts.agent.send(input));
      return;
    }
    if (this.#placement !== 'cloud' || !this.#published) throw busy(this.#placement);
    await this.#run?.followed.catch(() => undefined);
    const record = await this.opts.relay.resumeOnCloud(this.#published, input, { where: this.#where, maxTokens: this.opts.replyTokens?.() });
    await this.#follow(record.id, 0);
    // A stream that could not be followed again was reported to onEvent (as a cloud `error`).
    await this.#run?.followed.catch(() => undefined);
  }

  /** Resolves when the current run (here or in the cloud) has paused or ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([this.#local, this.#run?.followed]);
  }

  /**
   * Stops the run where it is. Here: the generation in flight ends "stopped" and is checkpointed. In the cloud: the
   * run is handed back — it checkpoints and publishes — and the session stays in the cloud, idle.
   */
  async stop(): Promise<void> {
    if (this.#placement === 'device') return this.opts.agent.cancel();
    const run = this.#run;
    if (this.#placement !== 'cloud' || !this.#published || !run || run.ended) return;
    await this.opts.relay.handBack(run.id, this.#published);
    await run.followed.catch(() => undefined);
  }

  /**
   * Moves the session to the cloud worker — or where `where` says: a device of the user's space offering itself as
   * a node (`name` says which, for people) — mid-generation if one is running; its stream goes on from there.
   */
  async moveToCloud(where?: RunPlacement, name?: string): Promise<RunRecord> {
    if (this.#placement !== 'device') throw busy(this.#placement);
    await this.#subscribe();
    this.#name = where?.space ? name : undefined;
    this.#set('moving-to-cloud');
    try {
      await this.opts.agent.cancel();
      // The cut step is checkpointed before the local run resolves.
      await this.#local?.catch(() => undefined);
      const file = await this.opts.agent.exportSession();
      const store = createMemoryStore();
      const sessionId = await importSession(store, file);
      const { snapshot, writeToken, key } = await this.opts.relay.publish(store, sessionId, this.#published);
      this.#published = { snapshot, writeToken, key };
      this.#where = where;
      const record = await this.opts.relay.resumeOnCloud(this.#published, { type: 'resume' }, { where, maxTokens: this.opts.replyTokens?.() });
      await this.#follow(record.id, 0);
      this.#set('cloud');
      return record;
    } catch (err) {
      // Nothing left the device for good: the session is still the agent worker's.
      this.#set('device');
      throw wrap(err, 'relay/move-failed', 'The session could not move to the cloud worker; it stays on this device. Check the connection to the relay and try again.');
    }
  }

  /**
   * After a reload: the session is in the cloud as `state` says. Its store catches up with the snapshot, and the
   * run (if one was going on) is followed again from the first event this device had not applied.
   */
  async resumeCloud(state: CloudState): Promise<void> {
    if (this.#placement !== 'device' || this.#run) throw busy(this.#placement);
    this.#published = state.published;
    this.#where = state.where;
    this.#name = state.name;
    this.#set('cloud');
    try {
      await this.opts.sync?.(state.published);
    } catch (err) {
      // The run is followed all the same: its next published checkpoint, or Bring back, copies everything.
      this.#report(err, 'relay/sync-failed', "The cloud's newest checkpoint could not be copied to this device; it is safe on the relay");
    }
    if (state.run) await this.#follow(state.run.id, state.run.from);
  }

  /** Stops the cloud run (its generation is cut and checkpointed), takes the session back and continues it here. */
  async bringBack(): Promise<AgentStatus> {
    if (this.#placement !== 'cloud' || !this.#published) throw busy(this.#placement);
    await this.#subscribe();
    this.#set('bringing-back');
    try {
      const run = this.#run;
      if (run) {
        // A run that already ended is not the relay's any more: stopping it is a no-op there.
        if (!run.ended) await this.opts.relay.handBack(run.id, this.#published);
        // A run that failed has streamed its error to onEvent; its last published checkpoint is still the session's.
        await run.followed.catch(() => undefined);
      }
      const store = createMemoryStore();
      const { sessionId } = await this.opts.relay.open({ relay: this.opts.relay.http.baseUrl, snapshotId: this.#published.snapshot.id, key: this.#published.key }, store);
      const status = await this.opts.reopen(await exportSession(store, sessionId));
      this.#run = undefined;
      this.#where = undefined;
      this.#name = undefined;
      this.#set('device');
      await this.opts.persist?.(null).catch((err: unknown) => this.#report(err, 'app/storage-failed', 'The session is back, but this device could not note it: after a reload it may show as in the cloud; "Bring back" then fixes that'));
      // A cut generation (or any pending step) continues here.
      if (status.state.status === 'running') void this.#track(this.opts.agent.send({ type: 'resume' })).catch(() => undefined);
      return status;
    } catch (err) {
      this.#set('cloud');
      throw wrap(err, 'relay/bring-back-failed', 'The session could not come back from the cloud worker; it is safe in its last published checkpoint. Try "Bring back" again.');
    }
  }

  async #subscribe(): Promise<void> {
    if (this.#subscribed) return;
    this.#subscribed = true;
    this.#unsubscribe = (await this.opts.agent.subscribe((event) => this.opts.onEvent({ where: 'device', event }))) ?? undefined;
  }

  /** Stops hearing the agent worker and the cloud run (another session takes them over). */
  close(): void {
    this.#unsubscribe?.();
    this.#run?.abort.abort();
  }

  #track(run: Promise<AgentStatus>): Promise<AgentStatus> {
    this.#local = run;
    return run.finally(() => {
      if (this.#local === run) this.#local = undefined;
    });
  }

  /** Follows run `id` from event `from` until it ends; the state to reload from is kept as it goes. */
  async #follow(id: string, from: number): Promise<void> {
    const run: FollowedRun = { id, followed: Promise.resolve(), ended: false, abort: new AbortController() };
    this.#run = run;
    await this.#persist({ id: run.id, from });
    run.followed = this.#stream(run, from).finally(() => {
      run.ended = true;
      // The run is over: a reload finds the session idle in the cloud (unless it is coming back). One that is only
      // no longer followed here (close) goes on in the cloud, and its record stays for the next follower.
      if (this.#run === run && this.#placement === 'cloud' && !run.abort.signal.aborted) void this.#persist(null);
    });
    // Followed by whoever awaits the run (send, settled, bringBack); never an unhandled rejection here.
    run.followed.then(() => (run.nodeLeft && this.#run === run && this.#placement === 'cloud' ? this.#comeBack() : undefined)).catch(() => undefined);
  }

  /**
   * The node running it left, and the relay did not hand the run to another (it was pinned there): the session comes
   * back to this device from its last published checkpoint, and says so. A message that no checkpoint holds is
   * offered again (PendingInput).
   */
  async #comeBack(): Promise<void> {
    const who = this.#name ?? 'The cloud worker';
    try {
      await this.bringBack();
    } catch (err) {
      this.#report(err, 'relay/bring-back-failed', `${who} running this session left, and it could not come back by itself; it is safe in its last published checkpoint. Use "Bring back"`);
      return;
    }
    this.opts.onEvent({ where: 'cloud', event: { type: 'notice', message: `${who} running this session left, so it came back to this device from its last checkpoint.` } });
  }

  /** The run's events from `from`, through a stream that is opened again (from the next seq) when it drops. */
  async #stream(run: FollowedRun, from: number): Promise<void> {
    let next = from;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.opts.relay.followRun(run.id, (m) => {
          next = m.seq + 1;
          this.#events = this.#events.then(() => this.#handle(run, m));
        }, { from: next, signal: run.abort.signal });
        await this.#events;
        return;
      } catch (err) {
        await this.#events;
        if (run.abort.signal.aborted) return;
        if (!isFerryError(err, 'relay/stream-lost') || attempt >= FOLLOW_RETRIES || !(await this.#mayFollow(run.id))) {
          throw this.#report(err, 'relay/stream-lost', 'Lost the cloud run\'s event stream. The session is safe in its last published checkpoint: reload to follow it again, or use "Bring back"');
        }
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
      }
    }
  }

  /** Whether following the run again can work: the relay still knows it (a relay restart keeps its runs). */
  async #mayFollow(runId: string): Promise<boolean> {
    try {
      await this.opts.relay.http.getRun(runId);
      return true;
    } catch (err) {
      return !isFerryError(err, 'relay/unknown-run');
    }
  }

  /** One cloud event: a published checkpoint is copied into this device's store first, then passed on. */
  async #handle(run: FollowedRun, m: RunMessage): Promise<void> {
    if (m.event.type === 'published' && this.#published && this.opts.sync) {
      try {
        await this.opts.sync(this.#published);
        await this.#persist({ id: run.id, from: m.seq + 1 });
      } catch (err) {
        // The checkpoint is safe on the relay: the next one, or Bring back, copies it.
        this.#report(err, 'relay/sync-failed', 'The cloud\'s newest checkpoint could not be copied to this device yet; it is safe on the relay and comes with the next one or with "Bring back"');
      }
    }
    // Its node left and, pinned there, the run ended: it comes back here once its stream ends (#comeBack), instead of
    // failing with the relay's "resume it elsewhere".
    if (m.event.type === 'error' && m.event.code === 'relay/node-left') {
      run.nodeLeft = true;
      return;
    }
    // The node it ran on left and the relay handed the run to another: the session is away there now.
    if (m.event.type === 'reassigned' && this.#where?.space && typeof m.event.name === 'string') {
      this.#name = m.event.name;
      await this.#persist({ id: run.id, from: m.seq + 1 });
      this.opts.onPlacement?.(this.#placement);
    }
    this.opts.onEvent({ where: 'cloud', event: m.event });
  }

  /** Saving may fail (storage full): the session goes on, and the user learns that a reload would lose track of it. */
  async #persist(run: CloudState['run']): Promise<void> {
    if (!this.#published || !this.opts.persist) return;
    try {
      await this.opts.persist({ published: this.#published, run, ...(this.#where ? { where: this.#where } : {}), ...(this.#name ? { name: this.#name } : {}) });
    } catch (err) {
      this.#report(err, 'app/storage-failed', 'Where this session runs could not be saved on this device, so a reload would lose track of the cloud run; keep this page open until you bring it back');
    }
  }

  /** A problem the session survives, told to the listener as a cloud `error` event; returned for a caller to throw. */
  #report(err: unknown, code: ErrorCode, message: string): FerryError {
    const e = wrap(err, code, message);
    this.opts.onEvent({ where: 'cloud', event: { type: 'error', code: e.code, message: e.message } });
    return e;
  }

  #set(placement: Placement): void {
    this.#placement = placement;
    this.opts.onPlacement?.(placement);
  }
}

const CloudStateSchema = v.strictObject({
  v: v.literal(1),
  published: v.string(),
  run: v.nullable(v.strictObject({ id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)), from: v.pipe(v.number(), v.integer(), v.minValue(0)) })),
  where: v.optional(RunPlacementSchema),
  name: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(200))),
});

const BAD_RECORD =
  'The saved record of where this session runs is damaged, so this device cannot follow or bring back its cloud run. The session continues here from its last checkpoint on this device; its cloud copy stays on the relay.';

/** What to keep on the device (IndexedDB of this origin, never a URL or a log) to find the session after a reload. */
export function serializeCloudState(state: CloudState): string {
  return JSON.stringify({ v: 1, published: serializePublished(state.published), run: state.run, ...(state.where ? { where: state.where } : {}), ...(state.name ? { name: state.name } : {}) });
}

/** The saved cloud state, checked; a damaged record is a typed error (the session is then treated as here). */
export function restoreCloudState(text: string): CloudState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FerryError('app/bad-cloud-record', BAD_RECORD);
  }
  const parsed = v.safeParse(CloudStateSchema, value);
  if (!parsed.success) throw new FerryError('app/bad-cloud-record', BAD_RECORD, { details: { issue: parsed.issues[0]?.message ?? 'invalid' } });
  try {
    const { where, name } = parsed.output;
    return { published: restorePublished(parsed.output.published), run: parsed.output.run, ...(where ? { where } : {}), ...(name ? { name } : {}) };
  } catch (cause) {
    throw new FerryError('app/bad-cloud-record', BAD_RECORD, { cause });
  }
}

function busy(placement: Placement): FerryError {
  const now = { device: 'runs on this device', 'moving-to-cloud': 'is moving to the cloud', cloud: 'runs in the cloud', 'bringing-back': 'is coming back' }[placement];
  return new FerryError('relay/move-busy', `The session ${now}; wait for that to finish, then try again.`);
}

function wrap(err: unknown, code: ErrorCode, message: string): FerryError {
  if (isFerryError(err)) return new FerryError(err.code, `${message} (${err.message})`, { cause: err });
  return new FerryError(code, `${message} (${err instanceof Error ? err.message : String(err)})`, { cause: err });
}
