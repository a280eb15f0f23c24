/**
 * The dispatcher of relay replicas: N stateless relays behind a load balancer share Postgres, and a run created
 * through any of them runs on a worker attached to any of them.
 *
 * - Workers attached to a replica are rows of `relay_workers` (refreshed while the replica lives; a dead replica's
 *   rows age out), so every replica lists them all, checks placements against them, and holds the space caps
 *   (counted under an advisory lock, so two replicas cannot both admit the last device).
 * - A run waiting for a worker is a row of `run_claims` with its start request sealed (request-box.ts). Creating it
 *   notifies every replica; a replica with a worker the placement allows claims it with one conditional UPDATE —
 *   exactly one claim wins however many race — and assigns it to its least-loaded such worker. A replica whose
 *   workers are all busy waits a moment before claiming, so an idle one is preferred.
 * - A claim is a lease, renewed every RENEW_MS. A replica that dies (kill -9) stops renewing; LEASE_MS later any
 *   other replica takes the run over (attempt + 1) and hands it to one of its workers, which resumes from the last
 *   checkpoint published on the snapshot. The worker that lost its replica reconnects through the load balancer.
 * - Fences by attempt: only the claim's current attempt may publish (mayPublish reads the claim), and only events
 *   of runs this replica holds reach the log, so a superseded worker can write nothing.
 * - Keys (dispatcher.ts): a run's request holds its session key sealed to each worker it may go to, never the key;
 *   a worker row carries the public key its runs are sealed to, and a run is claimed only for a local worker its key
 *   was sealed to. Only sealed events reach the log.
 * - Stop (hand back) reaches the replica holding the run by NOTIFY; the asking replica waits for the run's end in
 *   the shared log.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { RunStatus, SealedRunEvent, StartRunRequest, WorkerList, WorkerProfile } from '../../src/core/protocol/index.ts';
import type { Postgres } from '../store/postgres.ts';
import { allows, assignedTo, checkSpaceCaps, listedPrefixes, placementError, sealedEvent, type PlacedWorker } from './dispatcher.ts';
import type { PgBus } from './pg-bus.ts';
import type { PgRunLog } from './pg-run-log.ts';
import type { RequestBox } from './request-box.ts';
import type { RunDispatch, SealedPlacement, WorkerHandle } from './run-dispatch.ts';
import type { SnapshotRegistry } from './snapshot-registry.ts';

export const DISPATCH_CHANNEL = 'ferry_dispatch';

/** A claim not renewed for this long is another replica's to take (bounds failover after a replica dies). */
const LEASE_MS = 1500;
const RENEW_MS = 400;
const SWEEP_MS = 500;
/** A worker row not refreshed for this long belongs to a replica that is gone. */
const WORKER_TTL_MS = 3000;
const STOP_WAIT_MS = 30_000;
/** How long a replica whose best worker is fully busy waits before claiming (an idle replica claims first). */
const BUSY_CLAIM_DELAY_MS = 150;

interface LocalWorker {
  id: string;
  handle: WorkerHandle;
  runs: Set<string>;
}

interface Held {
  request: StartRunRequest;
  attempt: number;
  worker: string;
}

interface ClaimRow {
  run: string;
  request: Buffer;
  node: string | null;
  start_version: number;
  attempt: number;
  replica: string | null;
  worker: string | null;
  expired: boolean;
  status: RunStatus;
}

interface WorkerRow {
  id: string;
  space: string | null;
  embedded: boolean;
  profile: WorkerProfile;
  runs: number;
  public_key: string;
}

const placed = (w: WorkerRow): PlacedWorker => ({ id: w.id, space: w.space ?? undefined, publicKey: w.public_key });

type Note = { type: 'queued'; run: string } | { type: 'stop'; run: string };

const seconds = (ms: number): number => ms / 1000;

export interface SharedDispatcherOptions {
  db: Postgres;
  bus: PgBus;
  runs: PgRunLog;
  snapshots: SnapshotRegistry;
  box: RequestBox;
  log: FastifyBaseLogger;
}

export class SharedDispatcher implements RunDispatch {
  /** This replica, as claims name it. */
  readonly replica = randomBytes(8).toString('hex');
  private readonly workers = new Map<string, LocalWorker>();
  private readonly held = new Map<string, Held>();
  private readonly claiming = new Set<string>();
  private readonly timers: NodeJS.Timeout[];
  private readonly db: Postgres;
  private closing = false;
  private lastRenew = Date.now();
  private expected = 0;
  private arrivals: (() => void)[] = [];

  constructor(private readonly o: SharedDispatcherOptions) {
    this.db = o.db;
    o.bus.on(DISPATCH_CHANNEL, (payload) => this.notified(payload));
    // Notifications sent while the listener was away are lost: look at every waiting run again.
    o.bus.onReconnect(() => void this.sweep());
    this.timers = [setInterval(() => void this.renew(), RENEW_MS), setInterval(() => void this.sweep(), SWEEP_MS)];
  }

  expect(): { attached(): void; failed(error: { code: string; message: string }): void } {
    this.expected += 1;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.expected -= 1;
      if (this.expected === 0) for (const wake of this.arrivals.splice(0)) wake();
    };
    // Runs never wait on one replica's worker alone: a failed one simply never claims.
    return { attached: settle, failed: settle };
  }

  async arrived(timeoutMs: number): Promise<void> {
    if (this.expected === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((resolve) => this.arrivals.push(resolve)), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  async attach(handle: WorkerHandle): Promise<string> {
    const id = randomBytes(8).toString('hex');
    await this.db.transaction(async (tx) => {
      if (handle.space !== undefined) {
        // Every replica admits device nodes under this one lock: the caps hold for the deployment, not per replica.
        await tx.query("SELECT pg_advisory_xact_lock(hashtext('ferry device nodes'))");
        // Only proven members are rows here: strangers cannot fill these caps.
        const { rows } = await tx.query<{ here: number; from_address: number; all: number }>(
          'SELECT count(*) FILTER (WHERE space = $1)::int AS here, count(*) FILTER (WHERE address = $3)::int AS from_address, count(*)::int AS all FROM relay_workers WHERE space IS NOT NULL AND seen_at > now() - make_interval(secs => $2)',
          [handle.space, seconds(WORKER_TTL_MS), handle.address ?? null],
        );
        checkSpaceCaps(handle, { here: rows[0]!.here, fromAddress: rows[0]!.from_address, all: rows[0]!.all });
      }
      await tx.query('INSERT INTO relay_workers (id, replica, space, embedded, profile, public_key, address) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        id,
        this.replica,
        handle.space ?? null,
        handle.embedded,
        JSON.stringify(handle.profile),
        handle.publicKey,
        handle.address ?? null,
      ]);
    });
    this.workers.set(id, { id, handle, runs: new Set() });
    this.o.log.info({ worker: id, replica: this.replica, embedded: handle.embedded, device: handle.space !== undefined, profile: handle.profile }, 'worker attached');
    void this.sweep();
    return id;
  }

  detach(workerId: string, reason: string): void {
    const worker = this.workers.get(workerId);
    if (!worker) return;
    this.workers.delete(workerId);
    void this.db.query('DELETE FROM relay_workers WHERE id = $1', [workerId]).catch(() => undefined);
    if (this.closing) return;
    this.o.log.warn({ worker: workerId, reason, runs: worker.runs.size }, 'worker lost');
    for (const runId of worker.runs) {
      const h = this.held.get(runId);
      if (!h) continue;
      this.held.delete(runId);
      worker.handle.abandon(runId);
      this.o.runs.append(runId, { type: 'worker-lost', worker: workerId, reason });
      if (h.request.where?.node !== undefined) {
        void this.fail(runId, { code: 'relay/node-left', message: `The node running it left (${reason}); its last checkpoint is published — resume it elsewhere.` }, h.attempt);
        continue;
      }
      void this.release([runId]);
    }
  }

  async list(space?: string): Promise<WorkerList> {
    const rows = await this.liveWorkers();
    const visible = rows.filter((w) => w.space === null || w.space === space);
    // Keyed prefixes are known for this replica's own workers only (they change too often for the shared table).
    const local = (id: string) => {
      const handle = this.workers.get(id)?.handle;
      return handle ? listedPrefixes(handle) : {};
    };
    return { workers: visible.map((w) => ({ id: w.id, kind: w.space === null ? 'cloud' : 'device', embedded: w.embedded, runs: w.runs, profile: w.profile, publicKey: w.public_key, ...local(w.id) })) };
  }

  async checkPlacement(request: SealedPlacement): Promise<void> {
    const workers = (await this.liveWorkers()).map(placed);
    if (workers.some((w) => allows(request, w))) return;
    if (request.where?.node === undefined && request.where?.cloud !== false && this.expected > 0) return;
    throw placementError(request, workers);
  }

  async start(runId: string, request: StartRunRequest): Promise<void> {
    await this.checkPlacement(request);
    const startVersion = (await this.o.snapshots.get(request.snapshot))?.version ?? 0;
    await this.db.transaction(async (tx) => {
      await tx.query('INSERT INTO run_claims (run, request, node, start_version) VALUES ($1, $2, $3, $4)', [runId, this.o.box.seal(request, runId), request.where?.node ?? null, startVersion]);
      await tx.query('SELECT pg_notify($1, $2)', [DISPATCH_CHANNEL, JSON.stringify({ type: 'queued', run: runId } satisfies Note)]);
    });
  }

  async mayPublish(runId: string, attempt: number, snapshot: string): Promise<boolean> {
    const rows = await this.db.query('SELECT 1 FROM run_claims c JOIN runs r ON r.id = c.run WHERE c.run = $1 AND c.attempt = $2 AND c.replica IS NOT NULL AND r.snapshot = $3', [runId, attempt, snapshot]);
    return rows.length === 1;
  }

  event(workerId: string, runId: string, event: SealedRunEvent): void {
    if (this.held.get(runId)?.worker !== workerId) return;
    const sealed = sealedEvent(event, this.o.log, workerId, runId);
    if (sealed) this.o.runs.append(runId, sealed);
  }

  finished(workerId: string, runId: string, status: RunStatus, error?: { code: string; message: string }): void {
    const h = this.held.get(runId);
    if (h?.worker !== workerId || this.closing) return;
    this.held.delete(runId);
    this.workers.get(workerId)?.runs.delete(runId);
    if (status === 'failed' && error) this.o.runs.append(runId, { type: 'error', ...error });
    void this.end(runId, h.attempt, status, error);
  }

  async stop(runId: string): Promise<void> {
    const h = this.held.get(runId);
    if (h) this.workers.get(h.worker)?.handle.stop(runId);
    else {
      // Waiting for a worker: nothing runs, so stopping is ending it; its snapshot holds its last checkpoint.
      const waiting = await this.db.query('DELETE FROM run_claims WHERE run = $1 AND replica IS NULL RETURNING run', [runId]);
      if (waiting.length === 1) return this.o.runs.finish(runId, 'stopped');
      await this.db.query('SELECT pg_notify($1, $2)', [DISPATCH_CHANNEL, JSON.stringify({ type: 'stop', run: runId } satisfies Note)]);
    }
    await this.ended(runId, STOP_WAIT_MS);
  }

  /** Leaving: this replica's runs go back to the queue at once (other replicas take them), its workers' rows go. */
  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.timers) clearInterval(t);
    const runs = [...this.held.keys()];
    this.held.clear();
    await this.release(runs).catch(() => undefined);
    await this.db.query('DELETE FROM relay_workers WHERE replica = $1', [this.replica]).catch(() => undefined);
  }

  private notified(payload: string): void {
    let note: Note;
    try {
      note = JSON.parse(payload) as Note;
    } catch {
      return;
    }
    if (note.type === 'queued') void this.tryClaim(note.run);
    else if (note.type === 'stop') {
      const h = this.held.get(note.run);
      if (h) this.workers.get(h.worker)?.handle.stop(note.run);
    }
  }

  /** Claims `runId` for a local worker if it waits (or its lease ran out) and one of ours may run it. */
  private async tryClaim(runId: string): Promise<void> {
    if (this.closing || this.claiming.has(runId) || this.held.has(runId)) return;
    this.claiming.add(runId);
    try {
      const [c] = await this.db.query<ClaimRow>(
        'SELECT c.run, c.request, c.node, c.start_version, c.attempt, c.replica, c.worker, coalesce(c.lease_until < now(), true) AS expired, r.status FROM run_claims c JOIN runs r ON r.id = c.run WHERE c.run = $1',
        [runId],
      );
      if (!c || (c.replica !== null && !c.expired)) return;
      if (c.status !== 'running') {
        // The run ended but its claim outlived it (its replica died in between): nothing to run.
        await this.db.query('DELETE FROM run_claims WHERE run = $1 AND attempt = $2', [runId, c.attempt]);
        return;
      }
      const request = this.o.box.open(c.request, runId);
      const worker = this.leastLoaded(request);
      if (!worker) return;
      const load = worker.runs.size / worker.handle.profile.slots;
      if (load >= 1) await new Promise((resolve) => setTimeout(resolve, BUSY_CLAIM_DELAY_MS * Math.min(load, 3)));
      const won = await this.db.query<{ attempt: number }>(
        'UPDATE run_claims SET replica = $2, worker = $3, attempt = attempt + 1, lease_until = now() + make_interval(secs => $4) WHERE run = $1 AND attempt = $5 AND (replica IS NULL OR lease_until < now()) RETURNING attempt',
        [runId, this.replica, worker.id, seconds(LEASE_MS), c.attempt],
      );
      if (won.length === 0) return;
      const attempt = won[0]!.attempt;
      if (this.closing || !this.workers.has(worker.id)) return void (await this.release([runId]));
      let input = request;
      if (attempt > 1) {
        const version = (await this.o.snapshots.get(request.snapshot).catch(() => undefined))?.version ?? 0;
        // Its input is in a published checkpoint already: continue from there rather than deliver it twice.
        if (version > c.start_version) input = { ...request, input: { type: 'resume' } };
        if (c.replica !== null) this.o.runs.append(runId, { type: 'worker-lost', worker: c.worker ?? 'unknown', reason: 'its relay replica stopped answering' });
        this.o.runs.append(runId, { type: 'reassigned', worker: worker.id, name: worker.handle.profile.name, attempt });
      }
      this.held.set(runId, { request: input, attempt, worker: worker.id });
      worker.runs.add(runId);
      worker.handle.assign(runId, attempt, assignedTo(input, worker.handle));
    } catch (err) {
      this.o.log.warn({ err, run: runId }, 'claiming a run failed; the sweep tries again');
    } finally {
      this.claiming.delete(runId);
    }
  }

  /** Keeps this replica's claims; a claim another replica took over (or that could not be renewed in time) is dropped. */
  private async renew(): Promise<void> {
    const runs = [...this.held.keys()];
    if (runs.length === 0) {
      this.lastRenew = Date.now();
      return;
    }
    try {
      const kept = await this.db.query<{ run: string; attempt: number }>('UPDATE run_claims SET lease_until = now() + make_interval(secs => $3) WHERE replica = $1 AND run = ANY($2) RETURNING run, attempt', [this.replica, runs, seconds(LEASE_MS)]);
      const attempts = new Map(kept.map((k) => [k.run, k.attempt]));
      for (const id of runs) if (this.held.has(id) && attempts.get(id) !== this.held.get(id)!.attempt) this.drop(id, 'another replica took it over');
      this.lastRenew = Date.now();
    } catch {
      if (Date.now() - this.lastRenew <= LEASE_MS) return;
      for (const id of runs) this.drop(id, 'the database was out of reach for longer than the lease');
    }
  }

  /** Refreshes this replica's worker rows, forgets dead replicas' rows, and claims every run that waits. */
  private async sweep(): Promise<void> {
    if (this.closing) return;
    try {
      const mine = [...this.workers.values()];
      await this.db.query(
        'UPDATE relay_workers SET seen_at = now(), runs = t.runs FROM unnest($1::text[], $2::integer[]) AS t(id, runs) WHERE relay_workers.id = t.id',
        [mine.map((w) => w.id), mine.map((w) => w.runs.size)],
      );
      await this.db.query('DELETE FROM relay_workers WHERE seen_at < now() - make_interval(secs => $1)', [seconds(4 * WORKER_TTL_MS)]);
      const waiting = await this.db.query<{ run: string; node: string | null; attempt: number; expired: boolean; live: boolean }>(
        `SELECT c.run, c.node, c.attempt, c.lease_until IS NOT NULL AND c.lease_until < now() AS expired,
           c.node IS NULL OR EXISTS (SELECT 1 FROM relay_workers w WHERE w.id = c.node AND w.seen_at > now() - make_interval(secs => $1)) AS live
         FROM run_claims c WHERE c.replica IS NULL OR c.lease_until < now()`,
        [seconds(WORKER_TTL_MS)],
      );
      for (const w of waiting) {
        // Pinned to a node that is gone with its replica: whoever pinned it decides where it goes next.
        if (w.expired && !w.live) void this.fail(w.run, { code: 'relay/node-left', message: 'The node running it left with its relay replica; its last checkpoint is published — resume it elsewhere.' }, w.attempt, true);
        else void this.tryClaim(w.run);
      }
    } catch {
      // The database is away: the next sweep tries again.
    }
  }

  private drop(runId: string, why: string): void {
    const h = this.held.get(runId);
    if (!h) return;
    this.held.delete(runId);
    const worker = this.workers.get(h.worker);
    worker?.runs.delete(runId);
    worker?.handle.abandon(runId);
    this.o.log.warn({ run: runId, why }, 'claim lost');
  }

  /** Puts runs this replica holds back in the queue for any replica to claim. */
  private async release(runs: readonly string[]): Promise<void> {
    if (runs.length === 0) return;
    await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ run: string }>('UPDATE run_claims SET replica = NULL, worker = NULL, lease_until = NULL WHERE replica = $1 AND run = ANY($2) RETURNING run', [this.replica, runs]);
      for (const r of rows) await tx.query('SELECT pg_notify($1, $2)', [DISPATCH_CHANNEL, JSON.stringify({ type: 'queued', run: r.run } satisfies Note)]);
    });
  }

  /** Ends a run this replica held (or, `expired`, one whose lease ran out): its log first, then its claim. */
  private async end(runId: string, attempt: number, status: RunStatus, error?: { code: string; message: string }): Promise<void> {
    try {
      await this.o.runs.finish(runId, status, error);
      await this.db.query('DELETE FROM run_claims WHERE run = $1 AND attempt = $2', [runId, attempt]);
    } catch (err) {
      this.o.log.warn({ err, run: runId }, 'ending a run failed; its claim is swept later');
    }
  }

  private async fail(runId: string, error: { code: string; message: string }, attempt: number, expired = false): Promise<void> {
    if (expired) {
      // Exactly one replica fails it: the one whose conditional delete removes the expired claim.
      const gone = await this.db.query('DELETE FROM run_claims WHERE run = $1 AND attempt = $2 AND lease_until < now() RETURNING run', [runId, attempt]).catch(() => []);
      if (gone.length === 0) return;
    }
    this.o.runs.append(runId, { type: 'error', ...error });
    await this.end(runId, attempt, 'failed', error);
  }

  /** Resolves when run `runId` has ended in the shared log (or after `timeoutMs`). */
  private async ended(runId: string, timeoutMs: number): Promise<void> {
    const from = (await this.o.runs.get(runId))?.events ?? 0;
    let stop: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      stop = this.o.runs.follow(runId, from, (m) => m === 'end' && resolve());
    });
    clearTimeout(timer);
    stop?.();
  }

  private leastLoaded(request: SealedPlacement): LocalWorker | undefined {
    let best: LocalWorker | undefined;
    for (const w of this.workers.values()) {
      if (!allows(request, { id: w.id, space: w.handle.space, publicKey: w.handle.publicKey })) continue;
      if (!best || w.runs.size / w.handle.profile.slots < best.runs.size / best.handle.profile.slots) best = w;
    }
    return best;
  }

  private liveWorkers(): Promise<WorkerRow[]> {
    return this.db.query<WorkerRow>('SELECT id, space, embedded, profile, runs, public_key FROM relay_workers WHERE seen_at > now() - make_interval(secs => $1) ORDER BY id', [seconds(WORKER_TTL_MS)]);
  }
}
