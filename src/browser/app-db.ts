/**
 * The app's own small database ("ferry-app") beside the session store: the session catalogue, settings, transcript
 * caches, and per-session records that stay on this device (where a session was published or runs, a message not yet
 * checkpointed). Session contents live only in the content store. Every record read back passes a validator first.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { idbError } from './idb-store.ts';

export interface AppDb extends DBSchema {
  sessions: { key: string; value: unknown };
  settings: { key: string; value: unknown };
  /** Per session, the last transcript read: derived from immutable checkpoints, so it is valid for its head. */
  transcripts: { key: string; value: unknown };
  /** Per session, where it was last published (core/protocol/published-record.ts). Holds secrets. */
  published: { key: string; value: string };
  /** Per session away on a relay's node, what it takes to follow it after a reload (core/host RelayPlacement). Holds secrets. */
  cloud: { key: string; value: string };
  /** Per session, the message sent but not yet in a checkpoint (session-records.ts PendingInput). */
  pending: { key: string; value: unknown };
  /** Per session back from a relay's node, the session key its runs there used (base64url). Holds secrets. */
  ran: { key: string; value: string };
}

export type AppDatabase = IDBPDatabase<AppDb>;

export async function openAppDb(name = 'ferry-app'): Promise<AppDatabase> {
  let db: AppDatabase;
  try {
    db = await openDB<AppDb>(name, 5, {
      upgrade(d, oldVersion) {
        if (oldVersion < 1) {
          d.createObjectStore('sessions', { keyPath: 'id' });
          d.createObjectStore('settings');
        }
        if (oldVersion < 2) d.createObjectStore('transcripts');
        if (oldVersion < 3) d.createObjectStore('published');
        if (oldVersion < 4) {
          d.createObjectStore('cloud');
          d.createObjectStore('pending');
        }
        if (oldVersion < 5) d.createObjectStore('ran');
      },
      // A newer tab upgrades the database: this one lets go (its next write says to reload).
      blocking() {
        db.close();
      },
    });
  } catch (cause) {
    throw idbError(cause, 'open the session list');
  }
  return db;
}

/** Runs a write, turning IndexedDB's failures (quota, another tab's upgrade) into typed errors. */
export async function writing<T>(fn: () => Promise<T>, doing = 'save the session list'): Promise<T> {
  try {
    return await fn();
  } catch (cause) {
    throw idbError(cause, doing);
  }
}
