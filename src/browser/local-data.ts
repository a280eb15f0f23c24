/**
 * Everything this device keeps, opened once: the content-addressed session store (IndexedDB, shared with the agent
 * worker) and the app database beside it — the session list, the transcript caches, per-session records and the
 * settings. The UI holds this and the session host; sessions' contents are read through the core's Session.
 */
import { FerryError } from '../core/errors.ts';
import { Session } from '../core/session/index.ts';
import { exportSession, importFerryFile } from '../core/snapshot/index.ts';
import type { Store } from '../core/store/index.ts';
import { openAppDb, type AppDatabase } from './app-db.ts';
import { SessionCatalogue, type DeletedEntry, type SessionMeta } from './catalogue.ts';
import { openIdbStore } from './idb-store.ts';
import { SessionRecords, type SessionRecordsSnapshot } from './session-records.ts';
import { DeviceSettings } from './settings.ts';
import { Transcripts } from './transcripts.ts';

/** The IndexedDB store the app and the agent worker share. */
const STORE_NAME = 'ferry';

export interface OpenOptions {
  storeName?: string;
  appDbName?: string;
}

/** A deleted session, kept in memory until the undo window closes. */
export interface DeletedSession extends DeletedEntry {
  records: SessionRecordsSnapshot;
}

export class LocalData {
  readonly sessions: SessionCatalogue;
  readonly transcripts: Transcripts;
  readonly records: SessionRecords;
  readonly settings: DeviceSettings;

  private constructor(
    readonly store: Store,
    /** The store's IndexedDB name, which the agent worker opens too. */
    readonly storeName: string,
    private readonly db: AppDatabase,
  ) {
    this.transcripts = new Transcripts(db);
    this.sessions = new SessionCatalogue(store, db, this.transcripts);
    this.records = new SessionRecords(db);
    this.settings = new DeviceSettings(db);
  }

  static async open(opts: OpenOptions = {}): Promise<LocalData> {
    const name = opts.storeName ?? STORE_NAME;
    return new LocalData(openIdbStore({ name }), name, await openAppDb(opts.appDbName));
  }

  openSession(id: string): Promise<Session> {
    return Session.open(this.store, id);
  }

  /** Deletes a session from this device: its refs, its entry and its records (its objects stay for an undo). */
  async remove(id: string): Promise<DeletedSession> {
    const entry = await this.sessions.remove(id);
    return { ...entry, records: await this.records.remove(id) };
  }

  async undoRemove(deleted: DeletedSession): Promise<SessionMeta> {
    const meta = await this.sessions.undoRemove(deleted);
    await this.records.restore(meta.id, deleted.records);
    return meta;
  }

  /** The session as a `.ferry` file, named after its title (which the file carries too). */
  async exportFile(id: string): Promise<{ name: string; bytes: Uint8Array }> {
    const meta = await this.sessions.get(id);
    const bytes = await exportSession(this.store, id, { title: meta.title });
    const base = meta.title.replace(/[^\p{L}\p{N}._ -]+/gu, '').trim().replace(/\s+/g, '-').slice(0, 60) || 'session';
    return { name: `${base}.ferry`, bytes };
  }

  /**
   * Imports a `.ferry` file under the title it carries (a file from an older build: its name, else its first
   * message); nothing is stored unless the whole file checks out.
   */
  async importFile(bytes: Uint8Array, fileName = ''): Promise<SessionMeta> {
    let imported: { session: string; title?: string };
    try {
      imported = await importFerryFile(this.store, bytes);
    } catch (err) {
      if (err instanceof FerryError && err.code === 'snapshot/bad-container' && !fileName.endsWith('.ferry')) {
        throw new FerryError('snapshot/bad-container', `"${fileName || 'This file'}" is not a Ferry session file; choose a .ferry file exported from Ferry.`, { cause: err });
      }
      throw err;
    }
    const fromName = fileName.replace(/\.ferry$/i, '').replace(/[-_]+/g, ' ').trim().slice(0, 120);
    return this.sessions.adopt(imported.session, 'Imported session', imported.title ?? (fromName || undefined));
  }

  close(): void {
    this.db.close();
    void this.store.close();
  }
}
