/**
 * The relay's Postgres connection, shared by every table kept there (object index, refs and reflog, snapshots,
 * runs and their events, workers' leases): one pool per process, the schema brought up to date when it opens, and
 * one rule for failures — a database that cannot be reached is `store/unavailable` (HTTP 503, "retry shortly"),
 * never a hang and never an unexplained 500.
 *
 * Migrations are numbered SQL steps applied in order, each in its own transaction, under an advisory lock: N
 * replicas starting at once apply each step exactly once, and a replica of an older Ferry refuses a newer schema.
 */
import pg from 'pg';
import { FerryError } from '../../src/core/errors.ts';
import { redact } from './locations.ts';

export type Tx = pg.PoolClient;

/** The shared schema, oldest first. A step is never edited once released: a change is a new step. */
const MIGRATIONS: readonly string[] = [
  // 1: the object index (bytes live in S3: loose under objects/, or in packs), refs, reflog, snapshot registry.
  `CREATE TABLE objects (id text PRIMARY KEY, size integer NOT NULL, pack text, "offset" bigint);
   CREATE TABLE refs (name text PRIMARY KEY, id text NOT NULL REFERENCES objects(id));
   CREATE TABLE reflog (seq bigserial PRIMARY KEY, name text NOT NULL, "from" text, "to" text, reason text NOT NULL, at double precision NOT NULL);
   CREATE INDEX reflog_by_name ON reflog (name, seq);
   CREATE TABLE snapshots (id text PRIMARY KEY, token_hash bytea NOT NULL, created_at bigint NOT NULL);
   CREATE TABLE snapshot_structure (snapshot text NOT NULL, manifest text NOT NULL, ids bytea NOT NULL, PRIMARY KEY (snapshot, manifest));`,
  // 2: runs and their event logs (events are opaque payloads), the workers attached to each replica, and the
  // claims: which replica dispatches which run, under a lease, with its request sealed.
  `CREATE TABLE runs (id text PRIMARY KEY, snapshot text NOT NULL, status text NOT NULL, events integer NOT NULL DEFAULT 0, error text, created_at bigint NOT NULL, updated_at bigint NOT NULL);
   CREATE TABLE run_events (run text NOT NULL REFERENCES runs(id) ON DELETE CASCADE, seq integer NOT NULL, event text NOT NULL, PRIMARY KEY (run, seq));
   CREATE TABLE relay_workers (id text PRIMARY KEY, replica text NOT NULL, space text, embedded boolean NOT NULL, profile jsonb NOT NULL, runs integer NOT NULL DEFAULT 0, seen_at timestamptz NOT NULL DEFAULT now());
   CREATE INDEX relay_workers_by_space ON relay_workers (space);
   CREATE TABLE run_claims (run text PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE, request bytea NOT NULL, node text, start_version integer NOT NULL,
     attempt integer NOT NULL DEFAULT 0, replica text, worker text, lease_until timestamptz);`,
  // 3: the pages that came with each publish, beside its structure hints (readers get both in one request).
  `ALTER TABLE snapshot_structure ADD COLUMN pages bytea;`,
  // 4: keys and members. A run's read capability (its hash); a worker's public key (run keys are sealed to it) and a
  // device node's client address (capped per address). Events logged before are plaintext, which the log no longer
  // keeps, and their runs have no capability to read them with: they go.
  `ALTER TABLE runs ADD COLUMN read_hash bytea;
   ALTER TABLE relay_workers ADD COLUMN public_key text NOT NULL DEFAULT '';
   ALTER TABLE relay_workers ADD COLUMN address text;
   DELETE FROM run_events;`,
];

/** Any constant that names this schema's lock among other users of the same database. */
const MIGRATION_LOCK = 0x0fe77;

/** How long a request waits for a connection before the database counts as unreachable. */
const CONNECT_TIMEOUT_MS = 5_000;

export class Postgres {
  /** Where it is, without a password: for messages and /healthz. */
  readonly where: string;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly url: string,
  ) {
    this.where = redact(url);
  }

  static async open(url: string, options: { max?: number } = {}): Promise<Postgres> {
    const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'ferry-relay' });
    // An idle connection the server drops (a restart) must not take the process down: the next query reconnects.
    pool.on('error', () => undefined);
    const db = new Postgres(pool, url);
    try {
      await db.migrate();
    } catch (cause) {
      await pool.end().catch(() => undefined);
      if (cause instanceof FerryError) throw cause;
      throw new FerryError('store/open-failed', `Cannot open the Postgres database ${db.where}: ${messageOf(cause)}. Check --database (FERRY_DATABASE) and that the server runs.`, { cause });
    }
    return db;
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        await client.query('CREATE TABLE IF NOT EXISTS ferry_schema (version integer NOT NULL)');
        const { rows } = await client.query<{ version: number }>('SELECT version FROM ferry_schema');
        const version = rows[0]?.version ?? 0;
        if (version > MIGRATIONS.length) {
          throw new FerryError('store/bad-version', `The database ${this.where} has Ferry schema version ${version}; this Ferry knows ${MIGRATIONS.length}. Update Ferry.`);
        }
        for (let step = version; step < MIGRATIONS.length; step++) {
          await client.query('BEGIN');
          try {
            await client.query(MIGRATIONS[step]!);
            if (step === 0) await client.query('INSERT INTO ferry_schema (version) VALUES (1)');
            else await client.query('UPDATE ferry_schema SET version = $1', [step + 1]);
            await client.query('COMMIT');
          } catch (cause) {
            await client.query('ROLLBACK');
            throw cause;
          }
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      }
    } finally {
      client.release();
    }
  }

  /** One statement; rows typed by the caller. */
  async query<R extends pg.QueryResultRow>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params as unknown[])).rows;
    } catch (cause) {
      throw this.failure(cause);
    }
  }

  /**
   * Runs `fn` in one transaction: committed when it resolves, rolled back when it throws (its FerryErrors pass
   * through unchanged; a lost connection becomes store/unavailable).
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw this.failure(cause);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (cause) {
      await client.query('ROLLBACK').catch(() => (broken = true));
      throw this.failure(cause);
    } finally {
      // A connection that failed mid-transaction is not handed to the next request.
      client.release(broken);
    }
  }

  /** A dedicated connection outside the pool (LISTEN needs one that stays open). */
  async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'ferry-relay-listen' });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (cause) {
      throw this.failure(cause);
    }
    return client;
  }

  /** Throws store/unavailable unless the database answers now. */
  async check(): Promise<void> {
    await this.query('SELECT 1');
  }

  /** FerryErrors as they are; the database being unreachable as store/unavailable; anything else as a storage failure. */
  failure(cause: unknown): FerryError {
    if (cause instanceof FerryError) return cause;
    if (isConnectionFailure(cause)) return unavailable(`the database ${this.where}`, cause);
    return new FerryError('store/write-failed', `The database ${this.where} refused the operation: ${messageOf(cause)}; nothing from it is visible.`, { cause });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/** Postgres error codes of a failed or refused connection: 08 connection exception, 57P0x shutdown or starting. */
function isConnectionFailure(cause: unknown): boolean {
  const code = (cause as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('08') || /^57P0[1-4]$/.test(code) || /^E(CONNREFUSED|CONNRESET|PIPE|HOSTUNREACH|TIMEDOUT|AI_AGAIN)$/.test(code) || code === 'ENOTFOUND')) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended/i.test(messageOf(cause));
}

export function unavailable(what: string, cause: unknown): FerryError {
  return new FerryError('store/unavailable', `The relay cannot reach ${what} (${messageOf(cause)}); nothing was changed. Retry shortly.`, { cause });
}

export const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)) || String((cause as { code?: unknown } | null)?.code ?? 'unknown error');
