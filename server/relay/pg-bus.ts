/**
 * Cross-replica events through Postgres LISTEN/NOTIFY: one listening connection per replica, handlers per
 * channel. NOTIFY is transactional — a notification goes out only when the transaction that wrote the rows it
 * announces commits — so a replica never announces what is not durable, and Postgres is the one service replicas
 * need. A notification carries at most ~8 KB; senders put small events in it and point at the rows otherwise.
 *
 * When the connection drops (Postgres restarted, the network blipped) it reconnects with backoff, and every
 * `onReconnect` handler runs: notifications sent meanwhile are lost, so listeners catch up from the tables.
 */
import type pg from 'pg';
import type { Postgres } from '../store/postgres.ts';

type Handler = (payload: string) => void;

const MAX_BACKOFF_MS = 2000;

export class PgBus {
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly reconnected = new Set<() => void>();
  private closed = false;
  private backoff = 100;
  private retry: NodeJS.Timeout | undefined;

  private constructor(private readonly db: Postgres) {}

  static async open(db: Postgres, channels: readonly string[]): Promise<PgBus> {
    const bus = new PgBus(db);
    for (const c of channels) bus.handlers.set(c, new Set());
    await bus.connect();
    return bus;
  }

  on(channel: string, handler: Handler): () => void {
    const set = this.handlers.get(channel);
    if (!set) throw new Error(`PgBus: channel ${channel} was not declared at open`);
    set.add(handler);
    return () => set.delete(handler);
  }

  onReconnect(handler: () => void): () => void {
    this.reconnected.add(handler);
    return () => this.reconnected.delete(handler);
  }

  private async connect(): Promise<void> {
    const client = await this.db.connect();
    client.on('notification', (n) => {
      for (const h of this.handlers.get(n.channel) ?? []) h(n.payload ?? '');
    });
    const lost = (): void => {
      if (this.client !== client) return;
      this.client = undefined;
      void client.end().catch(() => undefined);
      this.schedule();
    };
    client.on('error', lost);
    client.on('end', lost);
    for (const channel of this.handlers.keys()) await client.query(`LISTEN ${channel}`);
    this.client = client;
    this.backoff = 100;
  }

  private schedule(): void {
    if (this.closed) return;
    this.retry = setTimeout(() => {
      this.connect().then(
        () => {
          for (const h of this.reconnected) h();
        },
        () => {
          this.backoff = Math.min(MAX_BACKOFF_MS, this.backoff * 2);
          this.schedule();
        },
      );
    }, this.backoff);
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }
}
