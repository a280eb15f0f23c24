/**
 * Run records and their event logs, in SQLite beside the snapshots: a relay restart keeps every record and every
 * event it acknowledged. It holds sealed events and the relay's metadata only (run-log.ts), and each run's read
 * capability as its hash. Live subscribers get each event as it is appended; a client that reconnects asks for
 * events from the last seq it saw and misses nothing. A run still "running" when the relay starts was cut off by
 * a restart: it is marked "interrupted" (its last published checkpoint is on its snapshot, ready to resume).
 *
 * Events reach live subscribers at once and the database one tick later, many per transaction: a token stream
 * must not cost a commit per token. The log is WAL with synchronous=NORMAL — it survives the relay process dying;
 * a power cut may drop the last events of a stream, never a checkpoint, which is durable in the snapshot.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { fromBase64Url, type RunMessage, type RunRecord, type RunStatus } from '../../src/core/protocol/index.ts';
import { FINAL_STATUSES, type LoggedEvent, type RunListener, type RunLog } from './run-log.ts';
import { tokenMatches } from './tokens.ts';

interface Row {
  id: string;
  snapshot: string;
  status: RunStatus;
  events: number;
  error: string | null;
  created_at: number;
  updated_at: number;
}

type Listener = RunListener;

export class RunRegistry implements RunLog {
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Next seq per run with events not yet flushed, and those events. */
  private readonly nextSeq = new Map<string, number>();
  private pending: { run: string; seq: number; event: string }[] = [];
  private flushScheduled = false;

  private constructor(private readonly db: Database.Database) {}

  static open(dir: string): RunRegistry {
    let db: Database.Database;
    try {
      db = new Database(path.join(dir, 'runs.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(`
        CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, snapshot TEXT NOT NULL, status TEXT NOT NULL, events INTEGER NOT NULL,
          error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS run_events (run TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (run, seq)) WITHOUT ROWID;
      `);
      // Runs recorded before read capabilities existed have none: nobody can follow them any more.
      const columns = db.prepare<[], { name: string }>('PRAGMA table_info(runs)').all().map((c) => c.name);
      // Their events were logged in plaintext, which the log no longer keeps: they go.
      if (!columns.includes('read_hash')) db.exec('ALTER TABLE runs ADD COLUMN read_hash BLOB; DELETE FROM run_events;');
      db.prepare("UPDATE runs SET status = 'interrupted', updated_at = ? WHERE status = 'running'").run(Date.now());
    } catch (cause) {
      throw new FerryError('store/open-failed', `Cannot open the run registry in ${dir}: ${cause instanceof Error ? cause.message : String(cause)}.`, { cause });
    }
    return new RunRegistry(db);
  }

  create(snapshot: string, readVerifier: string): RunRecord {
    const id = randomBytes(16).toString('hex');
    const now = Date.now();
    this.db
      .prepare('INSERT INTO runs (id, snapshot, status, events, error, created_at, updated_at, read_hash) VALUES (?, ?, ?, 0, NULL, ?, ?, ?)')
      .run(id, snapshot, 'running', now, now, Buffer.from(fromBase64Url(readVerifier, 'protocol/bad-request')));
    return this.get(id)!;
  }

  mayRead(id: string, token: string): boolean {
    const row = this.db.prepare<[string], { read_hash: Buffer | null }>('SELECT read_hash FROM runs WHERE id = ?').get(id);
    return !!row?.read_hash && tokenMatches(token, row.read_hash);
  }

  get(id: string): RunRecord | undefined {
    this.flush();
    const row = this.db.prepare<[string], Row>('SELECT * FROM runs WHERE id = ?').get(id);
    if (!row) return undefined;
    return {
      id: row.id,
      snapshot: row.snapshot,
      status: row.status,
      events: row.events,
      error: row.error === null ? null : (JSON.parse(row.error) as { code: string; message: string }),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    };
  }

  /** Appends one event: live subscribers get it now, the database within a tick (see above). */
  append(id: string, event: LoggedEvent): RunMessage {
    let seq = this.nextSeq.get(id);
    if (seq === undefined) {
      const row = this.db.prepare<[string], { events: number }>('SELECT events FROM runs WHERE id = ?').get(id);
      if (!row) throw new FerryError('relay/unknown-run', `There is no run ${id} on this relay.`);
      seq = row.events;
    }
    this.nextSeq.set(id, seq + 1);
    const message: RunMessage = { seq, event };
    this.pending.push({ run: id, seq, event: JSON.stringify(event) });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    for (const l of this.listeners.get(id) ?? []) l(message);
    return message;
  }

  /** Writes every pending event in one transaction. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const insert = this.db.prepare('INSERT INTO run_events (run, seq, event) VALUES (?, ?, ?)');
    const count = this.db.prepare('UPDATE runs SET events = ?, updated_at = ? WHERE id = ?');
    this.db.transaction(() => {
      const last = new Map<string, number>();
      for (const e of batch) {
        insert.run(e.run, e.seq, e.event);
        last.set(e.run, e.seq);
      }
      const now = Date.now();
      for (const [run, seq] of last) count.run(seq + 1, now, run);
    }).immediate();
  }

  finish(id: string, status: RunStatus, error?: { code: string; message: string }): void {
    this.flush();
    this.nextSeq.delete(id);
    this.db.prepare('UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE id = ?').run(status, error ? JSON.stringify(error) : null, Date.now(), id);
    for (const l of this.listeners.get(id) ?? []) l('end');
    this.listeners.delete(id);
  }

  /** Events from `from` on, oldest first. */
  events(id: string, from: number): RunMessage[] {
    this.flush();
    return this.db
      .prepare<[string, number], { seq: number; event: string }>('SELECT seq, event FROM run_events WHERE run = ? AND seq >= ? ORDER BY seq')
      .all(id, from)
      .map((r) => ({ seq: r.seq, event: JSON.parse(r.event) as LoggedEvent }));
  }

  /**
   * Replays events from `from`, then follows live ones; `listener('end')` once the run has ended. Registering
   * before reading the backlog (and skipping seqs already sent) means no event falls between the two.
   */
  follow(id: string, from: number, listener: Listener): () => void {
    let next = from;
    const deliver = (m: RunMessage | 'end'): void => {
      if (m === 'end') return listener('end');
      if (m.seq < next) return;
      next = m.seq + 1;
      listener(m);
    };
    const set = this.listeners.get(id) ?? new Set<Listener>();
    this.listeners.set(id, set);
    set.add(deliver);
    for (const m of this.events(id, from)) deliver(m);
    if (FINAL_STATUSES.has(this.get(id)?.status ?? 'failed')) {
      set.delete(deliver);
      listener('end');
    }
    return () => set.delete(deliver);
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
