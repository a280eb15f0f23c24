/**
 * The list of sessions on this device: title, template, activity, where each runs, its size and what it cost. The
 * entries are the app's view of the store, rebuilt from the store's refs when they are missing (an import from
 * another tab, a wiped list) and dropped when their session is gone. Every entry read back is validated first, and
 * each edit is one transaction, so edits made at the same time never overwrite each other with a stale copy.
 */
import * as v from 'valibot';
import { FerryError } from '../core/errors.ts';
import { MAX_SESSION_TITLE, Session, parseSessionRef, sessionPrefix, type SessionEvent } from '../core/session/index.ts';
import { collectClosure } from '../core/snapshot/index.ts';
import type { Ref, Store } from '../core/store/index.ts';
import { writing, type AppDatabase } from './app-db.ts';
import type { SessionAgent } from './template-components.ts';
import { TEMPLATE_IDS, TEMPLATES, templateName, type TemplateId } from './templates.ts';
import type { Transcripts } from './transcripts.ts';

const time = v.pipe(v.number(), v.finite(), v.minValue(0));
const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

const MetaSchema = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
  title: v.pipe(v.string(), v.maxLength(MAX_SESSION_TITLE)),
  template: v.picklist([...TEMPLATE_IDS, 'unknown']),
  /**
   * The agent component id the template was read from (null: the session holds no agent state). Absent in entries
   * written before templates were read from the agent: those are checked once when opened.
   */
  agent: v.optional(v.nullable(sha256)),
  createdAt: time,
  updatedAt: time,
  /** Where the session runs now, for people ("This device", "Cloud worker", a device's name). */
  runsOn: v.pipe(v.string(), v.maxLength(120)),
  /** It runs here speculatively (drafted here, verified by the relay's worker): the session host opens it so again. */
  speculative: v.optional(v.literal(true)),
  /** Bytes of every object the session reaches (all branches, tool state); null until measured. */
  sizeBytes: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
  steps: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** What the current branch's steps cost on paid workers, micro-dollars (absent in entries written before costs were kept). */
  costMicros: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
export type SessionMeta = v.InferOutput<typeof MetaSchema>;

/** A deleted session's entry and refs, kept in memory until the undo window closes. */
export interface DeletedEntry {
  meta: SessionMeta;
  refs: Ref[];
}

/** Throws a typed error unless `title` is a usable session title; returns it trimmed. */
export function checkTitle(title: string): string {
  const t = title.trim();
  if (t.length === 0) throw new FerryError('app/bad-title', 'A session needs a title; type at least one character.');
  if (t.length > MAX_SESSION_TITLE) throw new FerryError('app/bad-title', `Titles are at most ${MAX_SESSION_TITLE} characters; shorten it.`);
  return t;
}

/** Sessions whose title or template matches every word of `query` (case-insensitive). */
export function searchSessions(list: readonly SessionMeta[], query: string): SessionMeta[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...list];
  return list.filter((m) => {
    const hay = `${m.title} ${m.template} ${templateName(m.template)}`.toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

export class SessionCatalogue {
  /** Called when a background job changed an entry (e.g. its size). */
  onChange: ((id: string) => void) | undefined;
  /** Sessions being measured; `dirty` asks for one more walk after the current one (changes coalesce). */
  readonly #measuring = new Map<string, { dirty: boolean; done: Promise<void> }>();

  constructor(
    private readonly store: Store,
    private readonly db: AppDatabase,
    private readonly transcripts: Transcripts,
  ) {}

  /** Every session in the store, newest activity first. Repairs the list against the store's refs. */
  async list(): Promise<SessionMeta[]> {
    const [rows, refs] = await Promise.all([this.db.getAll('sessions'), this.store.listRefs('sessions/')]);
    const inStore = new Set<string>();
    for (const r of refs) {
      const p = parseSessionRef(r.name);
      if (p?.kind === 'head') inStore.add(p.sessionId);
    }
    const out: SessionMeta[] = [];
    const known = new Set<string>();
    for (const row of rows) {
      const meta = v.safeParse(MetaSchema, row);
      if (!meta.success || !inStore.has(meta.output.id)) {
        await this.db.delete('sessions', (row as { id?: string }).id ?? '');
        continue;
      }
      known.add(meta.output.id);
      out.push(meta.output);
    }
    for (const id of inStore) if (!known.has(id)) out.push(await this.#repair(id));
    return out.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  async get(id: string): Promise<SessionMeta> {
    const meta = v.safeParse(MetaSchema, await this.db.get('sessions', id));
    if (meta.success) return meta.output;
    if ((await this.store.getRef(`sessions/${id}/head`)) !== undefined) return this.#repair(id);
    throw new FerryError('session/not-found', 'This session is not on this device: it was deleted, or the link points at another device. Import its .ferry file to open it here.');
  }

  /** Lists a session just created in the store (its agent and tools' first state). */
  async register(id: string, template: TemplateId, agent: string, title?: string): Promise<SessionMeta> {
    if (!TEMPLATE_IDS.includes(template)) throw new FerryError('app/bad-template', `Unknown template "${String(template)}"; pick one of ${TEMPLATE_IDS.join(', ')}.`);
    const now = Date.now();
    const meta: SessionMeta = { id, title: checkTitle(title ?? `New ${TEMPLATES[template].name.toLowerCase()} session`), template, agent, createdAt: now, updatedAt: now, runsOn: 'This device', sizeBytes: null, steps: 0 };
    await this.put(meta);
    void this.measure(meta.id);
    return meta;
  }

  async rename(id: string, title: string): Promise<SessionMeta> {
    const checked = checkTitle(title);
    return this.change(id, (meta) => ({ ...meta, title: checked }));
  }

  /** Removes a session's refs and entry; its objects stay until the undo window has passed. */
  async remove(id: string): Promise<DeletedEntry> {
    const meta = await this.get(id);
    const refs = await this.store.listRefs(sessionPrefix(id));
    await this.store.commit([], refs.map((r) => ({ name: r.name, expect: r.id, next: null, reason: 'delete' })));
    await this.db.delete('sessions', id);
    await this.transcripts.forget(id);
    return { meta, refs };
  }

  async undoRemove(deleted: DeletedEntry): Promise<SessionMeta> {
    await this.store.commit([], deleted.refs.map((r) => ({ name: r.name, expect: null, next: r.id, reason: 'undo delete' })));
    await this.put(deleted.meta);
    return deleted.meta;
  }

  /** Records that the session changed (a run, a move back, branch work): its activity time, steps, cost and size. */
  async ran(session: Session): Promise<void> {
    const head = await session.checkpoint(await session.head());
    await this.change(session.id, (meta) => ({ ...meta, updatedAt: Date.now(), steps: head.counters.steps, costMicros: head.counters.costMicros }));
    void this.measure(session.id);
  }

  /** Records where the session runs now ("This device", "Cloud worker", a device's name), and whether speculatively. */
  setRunsOn(id: string, runsOn: string, speculative = false): Promise<SessionMeta> {
    return this.change(id, ({ speculative: _was, ...meta }) => ({ ...meta, runsOn: runsOn.slice(0, 120), ...(speculative ? { speculative: true as const } : {}) }));
  }

  /**
   * Reads the template of a session listed before templates were read from its agent (an import used to be listed
   * as an assistant), and corrects its entry. Entries that name their agent are returned as they are.
   */
  async checkTemplate(id: string): Promise<SessionMeta> {
    const meta = await this.get(id);
    if (meta.agent !== undefined) return meta;
    const agent = await agentOf(this.store, id);
    return this.change(id, (current) => ({ ...current, template: agent.template ?? 'unknown', agent: agent.agent }));
  }

  /** Lists a session found in the store (imported, opened from a link, written by another tab), with its agent's template. */
  async adopt(id: string, fallbackTitle: string, title?: string): Promise<SessionMeta> {
    const found = await this.#readMeta(id, fallbackTitle, title);
    await this.put(found.meta);
    return this.#listed(found);
  }

  /**
   * Lists a session whose head the store has and the list lacked when it was read. The entry is written only if still
   * absent: a session being created has its head before its entry, and its own entry (with the title typed) wins.
   */
  async #repair(id: string): Promise<SessionMeta> {
    const found = await this.#readMeta(id, 'Untitled session');
    const { meta } = found;
    const listed = await writing(async () => {
      const tx = this.db.transaction('sessions', 'readwrite');
      const row = v.safeParse(MetaSchema, await tx.store.get(id));
      if (!row.success) await tx.store.put(meta);
      await tx.done;
      return row.success ? row.output : meta;
    });
    return listed === meta ? this.#listed(found) : listed;
  }

  /** The entry a session found in the store gets, read from its checkpoints. */
  async #readMeta(id: string, fallbackTitle: string, title?: string): Promise<{ meta: SessionMeta; session: Session }> {
    const session = await Session.open(this.store, id);
    const head = await session.checkpoint(await session.head());
    const history = await session.history();
    const firstUser = history.findLast((h) => h.checkpoint.events.some((e) => e.type === 'user'));
    const root = history.at(-1)!.checkpoint;
    // Unread (the component files unreachable): 'unknown' for now, and no agent, so opening it reads it again.
    const agent = await agentOf(this.store, id).catch(() => undefined);
    const meta: SessionMeta = {
      id,
      title: checkTitle(title ?? titleFrom(firstUser?.checkpoint.events ?? [], fallbackTitle).slice(0, MAX_SESSION_TITLE)),
      template: agent?.template ?? 'unknown',
      ...(agent ? { agent: agent.agent } : {}),
      createdAt: root.at,
      updatedAt: Math.max(head.at, root.at),
      runsOn: 'This device',
      sizeBytes: null,
      steps: head.counters.steps,
      costMicros: head.counters.costMicros,
    };
    return { meta, session };
  }

  /** After a found session is listed: its transcript cached and its size measured. */
  async #listed({ meta, session }: { meta: SessionMeta; session: Session }): Promise<SessionMeta> {
    await this.transcripts.steps(session).catch(() => undefined);
    void this.measure(meta.id);
    return meta;
  }

  /** Measures a session's stored size in the background: one walk at a time per session, repeated once if it changed meanwhile. */
  measure(id: string): Promise<void> {
    const running = this.#measuring.get(id);
    if (running) {
      running.dirty = true;
      return running.done;
    }
    const job = { dirty: true, done: Promise.resolve() };
    job.done = (async () => {
      try {
        while (job.dirty) {
          job.dirty = false;
          await this.#measureOnce(id);
        }
      } finally {
        this.#measuring.delete(id);
      }
    })();
    this.#measuring.set(id, job);
    return job.done;
  }

  async #measureOnce(id: string): Promise<void> {
    try {
      const refs = await this.store.listRefs(sessionPrefix(id));
      if (refs.length === 0) return;
      const objects = await collectClosure(this.store, refs);
      const size = objects.reduce((n, o) => n + o.bytes.length, 0);
      if (await this.update(id, (meta) => (meta.sizeBytes === size ? undefined : { ...meta, sizeBytes: size }))) this.onChange?.(id);
    } catch {
      // Size is informative only: a failed walk leaves the last size shown, and the next change measures again.
    }
  }

  private put(meta: SessionMeta): Promise<unknown> {
    return writing(() => this.db.put('sessions', meta));
  }

  /** Edits an entry in one transaction; `edit` returning undefined leaves it. Resolves with what was written. */
  private update(id: string, edit: (meta: SessionMeta) => SessionMeta | undefined): Promise<SessionMeta | undefined> {
    return writing(async () => {
      const tx = this.db.transaction('sessions', 'readwrite');
      const row = v.safeParse(MetaSchema, await tx.store.get(id));
      const next = row.success ? edit(row.output) : undefined;
      if (next) await tx.store.put(next);
      await tx.done;
      return next;
    });
  }

  /** `update` of a session listed first if the store has it and the list does not; not-found when neither. */
  private async change(id: string, edit: (meta: SessionMeta) => SessionMeta): Promise<SessionMeta> {
    await this.get(id);
    return (await this.update(id, edit)) ?? this.get(id);
  }
}

function titleFrom(events: readonly SessionEvent[], fallback: string): string {
  const first = events.find((e): e is Extract<SessionEvent, { type: 'user' }> => e.type === 'user');
  const text = first?.text.replace(/\s+/g, ' ').trim() ?? '';
  return text ? text.slice(0, 60) : fallback;
}

/** Which template the session's agent belongs to (template-components.ts, loaded only when a session is adopted). */
async function agentOf(store: Store, id: string): Promise<SessionAgent> {
  const { sessionAgent } = await import('./template-components.ts');
  return sessionAgent(store, id);
}
