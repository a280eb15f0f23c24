/**
 * A session that runs on a relay's node — a cloud worker, or one of the user's devices offering itself — followed
 * from here. It is published straight from the local store (only what the relay lacks travels), every run is
 * started on the relay and its events are followed, and every checkpoint the node publishes is copied straight into
 * the local store before its `checkpoint` event is passed on — so the store is always the truth, wherever the
 * session runs. `stop()` hands the run back (the node cuts its step, checkpoints and publishes) and copies that last
 * checkpoint too; the session then stays on the relay, idle, until the next message or a move.
 *
 * Where it is (the snapshot with its write token and key, the placement, the run being followed and the next event
 * to read) is given to `persist` as it changes, so after a reload `RelayRunner.restore` picks the session up again.
 * Those records hold secrets: keep them on the device.
 */
import * as v from 'valibot';
import { FerryError } from '../errors.ts';
import { defaultOpenSocket, followRun, type OpenSocket } from '../parallel/run-follow.ts';
import {
  MAX_CONTINUE_TOKENS,
  RunPlacementSchema,
  fetchSnapshot,
  forgetRelayBuilds,
  publishSession,
  startSealedRun,
  type OpenRunMessage,
  type PublishedSnapshot,
  type RelayHttp,
  type RunPlacement,
  type SealedRunStart,
  type WorkerList,
} from '../protocol/index.ts';
import { publishedFrom, publishedJson, StoredPublishedSchema } from '../protocol/published-record.ts';
import type { SnapshotBase } from '../protocol/snapshot-sync.ts';
import type { Prompt } from '../llm/engine.ts';
import { readHostState } from '../runtime/checkpoint.ts';
import type { RunInput } from '../runtime/loop.ts';
import { Session, bytesEqual, encodeCanonical } from '../session/index.ts';
import type { Store } from '../store/index.ts';
import { readRunEvent } from './run-events.ts';
import { withContext, type RunnerListener, type SessionRunner } from './session-runner.ts';

/** Where a session on a relay is, as a reload needs it. Holds secrets (the write token and key). */
export interface RelayPlacement {
  published: PublishedSnapshot;
  /** Where its runs go: absent = the relay's cloud workers; otherwise a node of the user's space. */
  where?: RunPlacement;
  /** The name of the space's device it runs on (absent: a cloud worker). */
  name?: string;
  /** The run to follow and the seq of its first event not yet applied here; null while no run goes on. */
  run: { id: string; from: number } | null;
}

export interface RelayRunnerOptions {
  sessionId: string;
  /** The local store: the session is published from it and every checkpoint comes back into it. */
  store: Store;
  relay: RelayHttp;
  /** Where its runs go (absent: any cloud worker), and the name of the device that is, for people. */
  where?: RunPlacement;
  name?: string;
  onEvent: RunnerListener;
  /** Keeps where the session is for a reload, each time that changes. */
  persist?(placement: RelayPlacement): Promise<void>;
  /** The relay handed the run to another node (its name, when one of the space's devices). */
  onReassigned?(name: string | undefined): void;
  /** The node the run was pinned to left, and the relay did not move the run on: the caller brings the session back. */
  onNodeLeft?(): void;
  /** The reply length a run started from here gets; absent: the session's recorded one. */
  replyTokens?(): number;
  openSocket?: OpenSocket;
}

/** A lost event stream is followed again this many times (with a doubling wait, from 500 ms), then reported. */
const FOLLOW_RETRIES = 4;

interface Followed {
  id: string;
  /** The run reported a failure (its step failed, or it errored). */
  failed: boolean;
  /** A stop was asked from here (Stop, a move, letting go). */
  stopAsked: boolean;
  /** Settles once the run has ended and each of its events has been handled here. */
  done: Promise<void>;
  ended: boolean;
  abort: AbortController;
  nodeLeft: boolean;
}

export class RelayRunner implements SessionRunner {
  readonly sessionId: string;
  #published: PublishedSnapshot | undefined;
  /** What the relay's snapshot held when last seen: the next publish and fetch go on from it. */
  #base: SnapshotBase | undefined;
  #where: RunPlacement | undefined;
  #name: string | undefined;
  #run: Followed | undefined;
  /** The node's last checkpoint not yet copied here, announced once its `published` has been. */
  #pending: { step: number; id: string } | undefined;
  /** Events are handled one after another: a `published` one waits for its copy, and so do those after it. */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  #publishing: Promise<unknown> = Promise.resolve();
  /** The prompt the last warm prefilled (canonical bytes), until the resume it was for. */
  #warmedWith: Uint8Array | undefined;

  constructor(private readonly opts: RelayRunnerOptions) {
    this.sessionId = opts.sessionId;
    this.#where = opts.where;
    this.#name = opts.where?.space ? opts.name : undefined;
  }

  /** A session this device left on the relay before a reload: its store catches up, and its run is followed again. */
  static async restore(placement: RelayPlacement, opts: Omit<RelayRunnerOptions, 'where' | 'name'>): Promise<RelayRunner> {
    const runner = new RelayRunner({ ...opts, ...(placement.where ? { where: placement.where } : {}), ...(placement.name ? { name: placement.name } : {}) });
    runner.#published = placement.published;
    try {
      await runner.#sync();
    } catch (err) {
      // The run is followed all the same: its next published checkpoint, or a move back, copies everything.
      runner.#report(err, 'relay/sync-failed', "The newest checkpoint from the relay could not be copied to this device; it is safe on the relay");
    }
    if (placement.run) await runner.#follow(placement.run.id, placement.run.from);
    return runner;
  }

  /** The name of the space's device the session runs on; undefined on a cloud worker. */
  get name(): string | undefined {
    return this.#name;
  }

  get where(): RunPlacement | undefined {
    return this.#where;
  }

  get running(): boolean {
    return this.#run !== undefined && !this.#run.ended;
  }

  async settled(): Promise<void> {
    await this.#run?.done.catch(() => undefined);
  }

  async resume(): Promise<void> {
    // The workers to seal the key to are asked for while the session goes up, not after (the move's path).
    const workers = this.#workers();
    const [published, input] = await Promise.all([this.#publish(), this.#resumeInput()]);
    await this.#start(published, input, await workers);
  }

  /**
   * After a warm with the prompt the cut reply was generated from, the ids it got since (`continue`: the warmed node
   * evaluates them at once); otherwise a plain resume.
   */
  async #resumeInput(): Promise<SealedRunStart['input']> {
    const warmed = this.#warmedWith;
    this.#warmedWith = undefined;
    if (!warmed) return { type: 'resume' };
    const session = await Session.open(this.opts.store, this.sessionId);
    const cut = (await readHostState(session, await session.head())).loop.cut;
    if (!cut || cut.tokenizerId === '' || cut.tokens.length > MAX_CONTINUE_TOKENS || !bytesEqual(encodeCanonical(cut.prompt), warmed)) return { type: 'resume' };
    return { type: 'continue', tokenizer: cut.tokenizerId, tokens: [...cut.tokens] };
  }

  /**
   * Warms the node the resume will go to (move-ahead.ts): the session goes up as the store holds it, and a `warm` run
   * fetches it there and prefills `prompt`; resolves once that run has ended. The resume after it sends only what
   * changed since, under the same key, which that node has opened already.
   */
  async warm(prompt: Prompt): Promise<void> {
    this.#warmedWith = encodeCanonical(prompt);
    const workers = this.#workers();
    const published = await this.#publish();
    // The move stopped waiting and resumed meanwhile: nothing is left to warm.
    if (this.#run) return;
    const record = await startSealedRun(this.opts.relay, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input: { type: 'warm', prompt }, where: this.#where }, await workers);
    await followRun(this.opts.relay, record.id, () => undefined, { open: this.opts.openSocket ?? defaultOpenSocket(), key: published.key });
  }

  async send(input: RunInput): Promise<void> {
    // Content the person adds runs as a host step where the session's store is (the device); a node only resumes.
    if (input.type === 'tools') throw new FerryError('relay/content-away', 'Files and sources are added on the device that runs the session: bring it back to this device, add them, then move it again.');
    await this.settled();
    const workers = this.#workers();
    const published = await this.#current();
    const before = await this.#head();
    await this.#start(published, input, await workers);
    const run = this.#run;
    await this.settled();
    // A step that takes a message is always checkpointed. A run that ended with no new checkpoint, no failure and
    // no stop asked from here did not take it (its node lost it): once the store has everything the relay holds,
    // and still lacks a step after `before`, the message goes once more.
    if (!run || run.failed || run.stopAsked || run.nodeLeft || this.#closed || (await this.#head()) !== before) return;
    await this.#sync();
    if ((await this.#head()) !== before) return;
    await this.#start(this.#published!, input);
    await this.settled();
  }

  async stop(): Promise<void> {
    const run = this.#run;
    if (run) run.stopAsked = true;
    if (run && !run.ended && this.#published) await this.opts.relay.stopRun(run.id, this.#published.writeToken);
    await run?.done.catch(() => undefined);
    // Whatever it published last is here too, whether or not its event was read.
    if (this.#published) await this.#sync();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#run?.abort.abort();
  }

  /**
   * Lets the session go from this device (it is being deleted here): nothing of it is followed or copied here any
   * more, and its run on the relay is handed back — the session stays there, idle, from where it can be followed again.
   */
  async letGo(): Promise<void> {
    const run = this.#run;
    if (run) run.stopAsked = true;
    await this.close();
    if (run && !run.ended && this.#published) await this.opts.relay.stopRun(run.id, this.#published.writeToken);
  }

  /**
   * The snapshot as this device holds the session now, so a run goes on from what the person sees: what changed here
   * since the relay's copy was last seen goes up first (nothing travels when nothing did). A copy not seen since a
   * reload comes here first, so a device that missed checkpoints never publishes over them.
   */
  async #current(): Promise<PublishedSnapshot> {
    if (this.#published && !this.#base) await this.#sync();
    return this.#publish();
  }

  /**
   * Publishes the session from the local store: a new snapshot the first time, onto the same one after. One publish
   * at a time: a warm still publishing when its move stops waiting (move-ahead.ts) is followed by the
   * resume's, onto the snapshot it made, never beside it.
   */
  #publish(): Promise<PublishedSnapshot> {
    const next = this.#publishing.then(() => this.#publishNow());
    this.#publishing = next.catch(() => undefined);
    return next;
  }

  async #publishNow(): Promise<PublishedSnapshot> {
    const previous = this.#published ? { snapshotId: this.#published.snapshot.id, writeToken: this.#published.writeToken, key: this.#published.key, ...(this.#base ? { base: this.#base } : {}) } : undefined;
    // For the relay's nodes only (never a share): the builds the relay ships stay here, and its nodes have them.
    const result = await publishSession(this.opts.store, this.sessionId, this.opts.relay, previous, { omitRelayBuilds: true });
    this.#published = { snapshot: result.snapshot, writeToken: result.writeToken, key: result.key };
    this.#base = result.base;
    return this.#published;
  }

  /**
   * The workers a run may go to now, asked for ahead of the publish that precedes a start. A failed ask is asked
   * again by the start, which then says why.
   */
  #workers(): Promise<WorkerList | undefined> {
    return this.opts.relay.listWorkers(this.#where?.space).catch(() => undefined);
  }

  async #start(published: PublishedSnapshot, input: SealedRunStart['input'], workers?: WorkerList): Promise<void> {
    const maxTokens = this.opts.replyTokens?.();
    // The key is sealed to the workers the placement allows; the input travels sealed too.
    const record = await startSealedRun(this.opts.relay, {
      snapshot: published.snapshot.id,
      key: published.key,
      writeToken: published.writeToken,
      input,
      where: this.#where,
      maxTokens,
    }, workers);
    await this.#follow(record.id, 0);
  }

  /** The session's head in the local store. */
  async #head(): Promise<string> {
    return (await Session.open(this.opts.store, this.sessionId)).head();
  }

  /** Copies what the snapshot holds into the local store (only what it lacks travels). */
  async #sync(): Promise<void> {
    const published = this.#published!;
    const fetched = await fetchSnapshot(this.opts.relay, published.snapshot.id, published.key, this.opts.store, { since: this.#base?.snapshot.version ?? 0 });
    this.#base = fetched.base;
    this.#published = { ...published, snapshot: fetched.snapshot };
  }

  /** Follows run `id` from event `from` until it ends; where it is is kept for a reload as it goes. */
  async #follow(id: string, from: number): Promise<void> {
    const run: Followed = { id, done: Promise.resolve(), ended: false, abort: new AbortController(), nodeLeft: false, failed: false, stopAsked: false };
    this.#run = run;
    await this.#persist({ id, from });
    run.done = followRun(this.opts.relay, id, (m) => void (this.#queue = this.#queue.then(() => this.#handle(run, m)).catch((err: unknown) => this.#dropped(run, err))), {
      open: this.opts.openSocket ?? defaultOpenSocket(),
      key: this.#published!.key,
      signal: run.abort.signal,
      from,
      retries: FOLLOW_RETRIES,
      backoffMs: 500,
    })
      .then(async () => void (await this.#queue))
      .catch(async (err: unknown) => {
        await this.#queue;
        if (run.abort.signal.aborted) return;
        run.failed = true;
        throw this.#report(err, 'relay/stream-lost', 'Lost the event stream of the run on the relay. The session is safe in its last published checkpoint: reload to follow it again, or bring it back');
      })
      .finally(() => {
        run.ended = true;
        // Over: a reload finds the session idle on the relay. One only no longer followed here (close) goes on there.
        if (this.#run === run && !run.abort.signal.aborted) void this.#persist(null);
        if (run.nodeLeft && !this.#closed) this.opts.onNodeLeft?.();
      });
    run.done.catch(() => undefined);
  }

  /** One event of the run: a checkpoint is announced once it is in the local store; the rest pass on as they are. */
  async #handle(run: Followed, m: OpenRunMessage): Promise<void> {
    if (this.#closed) return;
    const read = readRunEvent(m.event);
    if (read.kind === 'control') {
      const c = read.control;
      if (c.type === 'checkpoint') this.#pending = { step: c.step, id: c.id };
      else if (c.type === 'published') await this.#arrived(run, m.seq);
      else {
        if (this.#where?.space) this.#name = c.name;
        await this.#persist({ id: run.id, from: m.seq + 1 });
        this.opts.onReassigned?.(this.#name);
      }
      return;
    }
    if (read.kind !== 'event') return;
    // Its node left and, pinned there, the run ended: the caller brings it back (onNodeLeft) rather than fail it.
    if (read.event.type === 'error' && read.event.code === 'relay/node-left') {
      run.nodeLeft = true;
      return;
    }
    if (read.event.type === 'error' || read.event.type === 'step-failed') run.failed = true;
    // The node lacks a build the relay was remembered to ship (it has another library now): ask for its list again.
    if (read.event.type === 'error' && read.event.code === 'relay/unknown-component') forgetRelayBuilds(this.opts.relay.baseUrl);
    this.opts.onEvent(read.event);
  }

  /**
   * Handling an event failed (a listener threw): it is reported, and the queue goes on, so the events after it —
   * this run's and the next's — are still handled; the run counts as failed, so a message it took is not sent again.
   */
  #dropped(run: Followed, err: unknown): void {
    run.failed = true;
    try {
      this.#report(err, 'relay/sync-failed', 'An event of the run on the relay could not be handled on this device; the session is safe on the relay and its next checkpoint comes here');
    } catch {
      // The listener throws on errors too: nothing more can be said to it.
    }
  }

  /** A checkpoint reached the snapshot: copied here, then announced. */
  async #arrived(run: Followed, seq: number): Promise<void> {
    try {
      await this.#sync();
      await this.#persist({ id: run.id, from: seq + 1 });
    } catch (err) {
      // The checkpoint is safe on the relay: the next one, or a move back, copies it.
      this.#report(err, 'relay/sync-failed', "The newest checkpoint from the relay could not be copied to this device yet; it is safe on the relay and comes with the next one");
      return;
    }
    // A step that failed publishes the checkpoint the session went back to: announced all the same, so a view reads it.
    const head = this.#pending ?? { step: 0, id: await (await Session.open(this.opts.store, this.sessionId)).head() };
    this.#pending = undefined;
    this.opts.onEvent({ type: 'checkpoint', step: head.step, id: head.id });
  }

  /** Saving may fail (storage full): the session goes on, and the person learns that a reload would lose track of it. */
  async #persist(run: RelayPlacement['run']): Promise<void> {
    if (!this.#published || !this.opts.persist || this.#closed) return;
    try {
      await this.opts.persist({ published: this.#published, run, ...(this.#where ? { where: this.#where } : {}), ...(this.#name ? { name: this.#name } : {}) });
    } catch (err) {
      this.#report(err, 'app/storage-failed', 'Where this session runs could not be saved on this device, so a reload would lose track of it; keep this page open until you bring it back');
    }
  }

  /** A problem the session survives, told to the listener; returned for a caller to throw. */
  #report(err: unknown, code: 'relay/sync-failed' | 'relay/stream-lost' | 'app/storage-failed', message: string): FerryError {
    const e = withContext(err, code, message);
    if (!this.#closed) this.opts.onEvent({ type: 'error', code: e.code, message: e.message });
    return e;
  }
}

const RelayPlacementSchema = v.strictObject({
  v: v.literal(2),
  published: StoredPublishedSchema,
  run: v.nullable(v.strictObject({ id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)), from: v.pipe(v.number(), v.integer(), v.minValue(0)) })),
  where: v.optional(RunPlacementSchema),
  name: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(200))),
});

const BAD_RECORD =
  'The saved record of where this session runs is damaged, so this device cannot follow or bring back its run on the relay. The session continues here from its last checkpoint on this device; its copy stays on the relay.';

/** The placement as text to keep on the device (never in a URL or a log). */
export function serializeRelayPlacement(p: RelayPlacement): string {
  return JSON.stringify({ v: 2, published: publishedJson(p.published), run: p.run, ...(p.where ? { where: p.where } : {}), ...(p.name ? { name: p.name } : {}) });
}

/** A saved placement, checked; a damaged record is a typed error (the session is then treated as here). */
export function restoreRelayPlacement(text: string): RelayPlacement {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FerryError('app/bad-cloud-record', BAD_RECORD);
  }
  // Records of the first format kept the published record as a string of its own.
  if (typeof value === 'object' && value !== null && (value as { v?: unknown }).v === 1 && typeof (value as { published?: unknown }).published === 'string') {
    try {
      value = { ...value, v: 2, published: JSON.parse((value as { published: string }).published) };
    } catch {
      throw new FerryError('app/bad-cloud-record', BAD_RECORD);
    }
  }
  const parsed = v.safeParse(RelayPlacementSchema, value);
  if (!parsed.success) throw new FerryError('app/bad-cloud-record', BAD_RECORD, { details: { issue: parsed.issues[0]?.message ?? 'invalid' } });
  const { where, name, run } = parsed.output;
  return { published: publishedFrom(parsed.output.published), run, ...(where ? { where } : {}), ...(name ? { name } : {}) };
}

