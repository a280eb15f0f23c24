/**
 * The run log in Postgres, for relay replicas: any replica creates, reads and follows any run. Events are numbered
 * when they are written — `UPDATE runs SET events = events + n RETURNING events` in the transaction that inserts
 * them — so numbering holds whichever replica writes, and they reach followers (on every replica, this one too)
 * only through a NOTIFY sent by that transaction: a follower never sees an event that a crash could take back, so
 * a follower that reconnects elsewhere finds exactly what it saw, and no seq twice.
 *
 * Appends are batched: what arrives within one tick is one transaction and one notification. While Postgres is
 * unreachable the batch waits, in order, and is written once it is back (bounded: past MAX_PENDING events the
 * oldest appends are refused). Notifications carry small events themselves; a follower that sees a gap (a large
 * event, a notification lost while the listening connection reconnected) reads the rows from the table.
 */
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../src/core/errors.ts';
import { fromBase64Url, type RunMessage, type RunRecord, type RunStatus } from '../../src/core/protocol/index.ts';
import type { Postgres } from '../store/postgres.ts';
import type { PgBus } from './pg-bus.ts';
import { FINAL_STATUSES, type LoggedEvent, type RunListener, type RunLog } from './run-log.ts';
import { tokenMatches } from './tokens.ts';

export const RUN_EVENTS_CHANNEL = 'ferry_run_events';

/** Below Postgres's 8,000-byte notification limit, with room for the envelope. */
const MAX_NOTIFY_BYTES = 7000;
/** Events waiting for an unreachable database, all runs together. */
const MAX_PENDING = 100_000;
const RETRY_MS = 250;

interface Row {
  id: string;
  snapshot: string;
  status: RunStatus;
  events: number;
  error: string | null;
  created_at: string;
  updated_at: string;
}

/** One notification: events of runs from `seq` on (inline), or only how far a run's log now goes (`to`). */
type Note = { run: string; seq: number; events: string[] } | { run: string; to: number } | { run: string; end: true };

type Job = { kind: 'events'; run: string; events: string[] } | { kind: 'finish'; run: string; status: RunStatus; error: string | null; done: () => void; failed: (e: unknown) => void };

export class PgRunLog implements RunLog {
  private pending: Job[] = [];
  private pendingEvents = 0;
  private flushing: Promise<void> | undefined;
  private readonly followers = new Map<string, Set<Follower>>();
  private closed = false;

  constructor(
    private readonly db: Postgres,
    bus: PgBus,
  ) {
    bus.on(RUN_EVENTS_CHANNEL, (payload) => this.notified(payload));
    // Notifications sent while the listener was away are lost: every follower reads what it missed.
    bus.onReconnect(() => {
      for (const set of this.followers.values()) for (const f of set) f.catchUp();
    });
  }

  async create(snapshot: string, readVerifier: string): Promise<RunRecord> {
    const id = randomBytes(16).toString('hex');
    const now = Date.now();
    const [row] = await this.db.query<Row>(
      "INSERT INTO runs (id, snapshot, status, events, error, created_at, updated_at, read_hash) VALUES ($1, $2, 'running', 0, NULL, $3, $3, $4) RETURNING *",
      [id, snapshot, now, Buffer.from(fromBase64Url(readVerifier, 'protocol/bad-request'))],
    );
    return record(row!);
  }

  async mayRead(id: string, token: string): Promise<boolean> {
    const [row] = await this.db.query<{ read_hash: Buffer | null }>('SELECT read_hash FROM runs WHERE id = $1', [id]);
    return !!row?.read_hash && tokenMatches(token, row.read_hash);
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const [row] = await this.db.query<Row>('SELECT * FROM runs WHERE id = $1', [id]);
    return row && record(row);
  }

  append(id: string, event: LoggedEvent): void {
    if (this.pendingEvents >= MAX_PENDING) throw new FerryError('store/unavailable', `The run log has ${MAX_PENDING} events waiting for the database; run ${id}'s event is refused. Retry once it is back.`);
    const last = this.pending.at(-1);
    const text = JSON.stringify(event);
    if (last?.kind === 'events' && last.run === id) last.events.push(text);
    else this.pending.push({ kind: 'events', run: id, events: [text] });
    this.pendingEvents++;
    this.schedule();
  }

  finish(id: string, status: RunStatus, error?: { code: string; message: string }): Promise<void> {
    return new Promise((done, failed) => {
      this.pending.push({ kind: 'finish', run: id, status, error: error ? JSON.stringify(error) : null, done, failed });
      this.schedule();
    });
  }

  async events(id: string, from: number): Promise<RunMessage[]> {
    const rows = await this.db.query<{ seq: number; event: string }>('SELECT seq, event FROM run_events WHERE run = $1 AND seq >= $2 ORDER BY seq', [id, from]);
    return rows.map((r) => ({ seq: r.seq, event: JSON.parse(r.event) as LoggedEvent }));
  }

  follow(id: string, from: number, listener: RunListener): () => void {
    const set = this.followers.get(id) ?? new Set<Follower>();
    this.followers.set(id, set);
    const f = new Follower(this, id, from, listener, () => {
      set.delete(f);
      if (set.size === 0) this.followers.delete(id);
    });
    set.add(f);
    // Registered before the backlog is read, so nothing falls between the two.
    f.catchUp();
    return () => f.stop();
  }

  /** Every event written so far and the run's status, read together (for a follower catching up). */
  async since(id: string, from: number): Promise<{ events: RunMessage[]; ended: boolean }> {
    const [events, run] = await Promise.all([this.events(id, from), this.get(id)]);
    return { events, ended: run === undefined || FINAL_STATUSES.has(run.status) };
  }

  private schedule(): void {
    if (this.flushing || this.closed) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  /** Writes pending jobs in order, a batch per transaction; waits and retries while the database is unreachable. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      try {
        await this.write(batch);
      } catch (err) {
        // Nothing of the batch was written: it goes back in front, in order.
        this.pending = [...batch, ...this.pending];
        if (this.closed) {
          for (const j of this.pending) if (j.kind === 'finish') j.failed(err);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      this.pendingEvents -= batch.reduce((n, j) => n + (j.kind === 'events' ? j.events.length : 0), 0);
      for (const j of batch) if (j.kind === 'finish') j.done();
    }
    this.flushing = undefined;
    if (this.pending.length > 0) this.schedule();
  }

  private async write(batch: readonly Job[]): Promise<void> {
    const now = Date.now();
    await this.db.transaction(async (tx) => {
      const notes: Note[] = [];
      // Consecutive appends (of any runs) are written with one statement each for numbering and inserting.
      let appends: Extract<Job, { kind: 'events' }>[] = [];
      const writeAppends = async (): Promise<void> => {
        if (appends.length === 0) return;
        const byRun = new Map<string, string[]>();
        for (const j of appends) byRun.set(j.run, [...(byRun.get(j.run) ?? []), ...j.events]);
        appends = [];
        const runs = [...byRun.keys()];
        const { rows } = await tx.query<{ id: string; events: number }>(
          'UPDATE runs SET events = runs.events + t.n, updated_at = $3 FROM unnest($1::text[], $2::integer[]) AS t(id, n) WHERE runs.id = t.id RETURNING runs.id, runs.events',
          [runs, runs.map((r) => byRun.get(r)!.length), now],
        );
        // A run that does not exist (never created here) has nowhere to put its events.
        const ids: string[] = [];
        const seqs: number[] = [];
        const texts: string[] = [];
        for (const { id, events: end } of rows) {
          const events = byRun.get(id)!;
          const first = end - events.length;
          events.forEach((e, i) => (ids.push(id), seqs.push(first + i), texts.push(e)));
          const inline = JSON.stringify({ run: id, seq: first, events });
          notes.push(inline.length <= MAX_NOTIFY_BYTES ? { run: id, seq: first, events } : { run: id, to: end });
        }
        if (ids.length > 0) await tx.query('INSERT INTO run_events (run, seq, event) SELECT * FROM unnest($1::text[], $2::integer[], $3::text[])', [ids, seqs, texts]);
      };
      for (const job of batch) {
        if (job.kind === 'events') {
          appends.push(job);
          continue;
        }
        await writeAppends();
        await tx.query('UPDATE runs SET status = $2, error = $3, updated_at = $4 WHERE id = $1', [job.run, job.status, job.error, now]);
        notes.push({ run: job.run, end: true });
      }
      await writeAppends();
      for (const chunk of chunks(notes)) await tx.query('SELECT pg_notify($1, $2)', [RUN_EVENTS_CHANNEL, chunk]);
    });
  }

  private notified(payload: string): void {
    let notes: Note[];
    try {
      notes = JSON.parse(payload) as Note[];
    } catch {
      return;
    }
    for (const note of notes) for (const f of this.followers.get(note.run) ?? []) f.note(note);
  }

  async close(): Promise<void> {
    // Whatever was appended is written before the log closes; with the database gone, the flush gives up at its
    // next failure instead of waiting for it forever (those events are dropped).
    this.closed = true;
    await this.flushing;
  }
}

/** One follower of one run: delivers each seq once, in order, reading from the table whenever it sees a gap. */
class Follower {
  private next: number;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly log: PgRunLog,
    private readonly run: string,
    from: number,
    private readonly listener: RunListener,
    private readonly remove: () => void,
  ) {
    this.next = from;
  }

  note(note: Note): void {
    this.enqueue(async () => {
      if ('end' in note) return this.catchUpNow();
      if ('to' in note) return note.to > this.next ? this.catchUpNow() : undefined;
      if (note.seq > this.next) return this.catchUpNow();
      note.events.forEach((text, i) => this.deliver({ seq: note.seq + i, event: JSON.parse(text) as LoggedEvent }));
    });
  }

  catchUp(): void {
    this.enqueue(() => this.catchUpNow());
  }

  stop(): void {
    this.stopped = true;
    this.remove();
  }

  private async catchUpNow(): Promise<void> {
    let read: { events: RunMessage[]; ended: boolean };
    try {
      read = await this.log.since(this.run, this.next);
    } catch {
      // The database is away: the reconnect handler calls catchUp again when it is back.
      return;
    }
    for (const m of read.events) this.deliver(m);
    if (read.ended && !this.stopped) {
      this.stop();
      this.listener('end');
    }
  }

  private deliver(m: RunMessage): void {
    if (this.stopped || m.seq < this.next) return;
    this.next = m.seq + 1;
    this.listener(m);
  }

  private enqueue(task: () => Promise<void> | void): void {
    this.queue = this.queue.then(task).catch(() => undefined);
  }
}

/** Notes packed into payloads under the size limit. */
function chunks(notes: readonly Note[]): string[] {
  const out: string[] = [];
  let current: string[] = [];
  let size = 2;
  for (const n of notes) {
    const text = JSON.stringify(n);
    if (current.length > 0 && size + text.length + 1 > MAX_NOTIFY_BYTES) {
      out.push(`[${current.join(',')}]`);
      current = [];
      size = 2;
    }
    current.push(text);
    size += text.length + 1;
  }
  if (current.length > 0) out.push(`[${current.join(',')}]`);
  return out;
}

function record(row: Row): RunRecord {
  return {
    id: row.id,
    snapshot: row.snapshot,
    status: row.status,
    events: row.events,
    error: row.error === null ? null : (JSON.parse(row.error) as { code: string; message: string }),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
