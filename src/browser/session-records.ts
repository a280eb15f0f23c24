/**
 * What this device keeps about each session beside its contents, in the app database: the message sent but not yet
 * checkpointed (so a tab that dies first offers it again), where the session was last published (to update the same
 * share link), and where it runs while away on a relay's node (to follow it again after a reload). The last two hold
 * secrets — write tokens and session keys — and never leave the device.
 */
import * as v from 'valibot';
import { fromBase64Url } from '../core/protocol/base64url.ts';
import { branchRef, type Session } from '../core/session/index.ts';
import { writing, type AppDatabase } from './app-db.ts';

const PendingInputSchema = v.object({
  text: v.pipe(v.string(), v.minLength(1), v.maxLength(64 * 1024)),
  /** The branch it was sent on, and that branch's head then: the checkpoint holding it comes after that one. */
  branch: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  base: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  at: v.pipe(v.number(), v.finite(), v.minValue(0)),
});
/**
 * A message the user sent that no checkpoint holds yet: it enters the session only with the checkpoint of the step
 * that consumes it, so until then it lives here, and a tab that dies meanwhile offers it again instead of losing it.
 */
export type PendingInput = v.InferOutput<typeof PendingInputSchema>;

/** A session's records, as a delete takes them away and an undo puts them back. */
export interface SessionRecordsSnapshot {
  cloud?: string;
  pending?: unknown;
  published?: string;
  ran?: string;
}

/** The stores that hold a session's records, each under its id. */
const RECORD_STORES = ['cloud', 'pending', 'published', 'ran'] as const;

export class SessionRecords {
  constructor(private readonly db: AppDatabase) {}

  /** Remembers `text`, sent now on the session's current branch, until a checkpoint holds it; resolves once it is saved. */
  async savePending(session: Session, text: string): Promise<PendingInput> {
    const pending = v.parse(PendingInputSchema, { text, branch: session.branch, base: await session.head(), at: Date.now() });
    await writing(() => this.db.put('pending', pending, session.id));
    return pending;
  }

  clearPending(id: string): Promise<unknown> {
    return writing(() => this.db.delete('pending', id));
  }

  /**
   * The session's message still waiting for a checkpoint, or null. One that a checkpoint after its base on its
   * branch now holds has landed: its record is dropped here. An unreadable record is dropped too (it says nothing).
   */
  async pendingInput(session: Session): Promise<PendingInput | null> {
    const row = await this.db.get('pending', session.id).catch(() => undefined);
    if (row === undefined) return null;
    const parsed = v.safeParse(PendingInputSchema, row);
    if (parsed.success && !(await landed(session, parsed.output))) return parsed.output;
    await this.clearPending(session.id);
    return null;
  }

  /** Where the session was last published (opaque here: core/protocol/published-record.ts validates it). */
  async published(id: string): Promise<string | undefined> {
    const text = await this.db.get('published', id).catch(() => undefined);
    return typeof text === 'string' ? text : undefined;
  }

  savePublished(id: string, record: string): Promise<unknown> {
    return writing(() => this.db.put('published', record, id));
  }

  /** Where the session runs while away (opaque here: core/host restoreRelayPlacement validates it). */
  async placement(id: string): Promise<string | undefined> {
    const text = await this.db.get('cloud', id).catch(() => undefined);
    return typeof text === 'string' ? text : undefined;
  }

  /** Saves (or, with null, drops) where the session runs while away; a dropped one's session key is kept (`prefixKey`). */
  async savePlacement(id: string, record: string | null): Promise<unknown> {
    if (record !== null) return writing(() => this.db.put('cloud', record, id));
    const key = keyOf(await this.placement(id));
    if (key) await writing(() => this.db.put('ran', key, id));
    return writing(() => this.db.delete('cloud', id));
  }

  /**
   * The session key a relay's workers keyed the prefixes this session left in their KV caches with: its run's while it
   * is away, else its last run's there, else its share's. Undefined: it never left this device.
   */
  async prefixKey(id: string): Promise<Uint8Array | undefined> {
    const ran = await this.db.get('ran', id).catch(() => undefined);
    const key = keyOf(await this.placement(id)) ?? (typeof ran === 'string' ? ran : undefined) ?? keyOf(await this.published(id));
    return key === undefined ? undefined : fromBase64Url(key);
  }

  /** Takes every record of a deleted session away, returning what an undo puts back. */
  async remove(id: string): Promise<SessionRecordsSnapshot> {
    const snapshot: SessionRecordsSnapshot = {};
    for (const store of RECORD_STORES) {
      const value: unknown = await this.db.get(store, id).catch(() => undefined);
      if (value !== undefined) Object.assign(snapshot, { [store]: value });
      await this.db.delete(store, id).catch(() => undefined);
    }
    return snapshot;
  }

  async restore(id: string, records: SessionRecordsSnapshot): Promise<void> {
    for (const store of RECORD_STORES) if (records[store] !== undefined) await writing(() => this.db.put(store, records[store], id));
  }
}

/** The session key (base64url) in a share or placement record, read no further than that; undefined where there is none. */
function keyOf(record: string | undefined): string | undefined {
  if (record === undefined) return undefined;
  try {
    const value = JSON.parse(record) as { key?: unknown; published?: { key?: unknown } | string };
    // A placement record holds its share record (as a string in its first format); a share record holds the key.
    const published = typeof value.published === 'string' ? (JSON.parse(value.published) as { key?: unknown }) : (value.published ?? value);
    return typeof published.key === 'string' && /^[A-Za-z0-9_-]{43}$/.test(published.key) ? published.key : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a checkpoint after `pending.base` on its branch holds the message. A branch that no longer reaches the
 * base (rolled back past it) holds it nowhere: an older message with the same words does not count.
 */
async function landed(session: Session, pending: PendingInput): Promise<boolean> {
  let found = false;
  for (let id = (await session.store.getRef(branchRef(session.id, pending.branch))) ?? null; id !== null; ) {
    if (id === pending.base) return found;
    const cp = await session.checkpoint(id);
    found ||= cp.events.some((e) => e.type === 'user' && e.text === pending.text);
    id = cp.parent;
  }
  return false;
}
