/**
 * The app's own state over the IndexedDB store and the session core: the session catalogue (title, template,
 * activity, where it runs, size), per-session operations the UI offers (send, fork, roll back and undo it, switch
 * branch, compare), `.ferry` export/import and the user's settings.
 *
 * Session contents live only in the content store, through the session core. The catalogue entries and settings
 * live in a small second database ("ferry-app"): they are the app's view, rebuilt from the store's refs when they
 * are missing (an import from another tab, a wiped catalogue), and dropped when their session is gone.
 * Every record read back passes a validator first (restore before trusting).
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import * as v from 'valibot';
import { FerryError } from '../core/errors.ts';
import { DEFAULT_PREFS, type PlacementPrefs } from '../core/placement/index.ts';
import { Session, branchRef, parseSessionRef, sessionPrefix, type Checkpoint, type HistoryEntry, type SessionEvent } from '../core/session/index.ts';
import { collectClosure, exportSession, importSession } from '../core/snapshot/index.ts';
import type { ObjectId, Ref, Store } from '../core/store/index.ts';
import { idbError, openIdbStore } from './idb-store.ts';
import type { SessionAgent } from './template-components.ts';

export const TEMPLATE_IDS = ['assistant', 'dev-guide', 'podcast', 'survey'] as const;
export type TemplateId = (typeof TEMPLATE_IDS)[number];

export const TEMPLATES: Record<TemplateId, { name: string; description: string }> = {
  assistant: { name: 'Assistant', description: 'A plain chat assistant.' },
  'dev-guide': { name: 'Dev guide', description: 'Software-development guidance over a code workspace.' },
  podcast: { name: 'Podcast', description: 'A podcast script with speakers and segments.' },
  survey: { name: 'Survey', description: 'A survey paper drafted over many sources.' },
};

/**
 * A catalogued session's template: one of ours, or 'unknown' for a session whose agent this build does not have
 * (imported from another version of Ferry, or written without an agent): it can be read, not continued.
 */
export type SessionTemplate = TemplateId | 'unknown';

export function templateName(template: SessionTemplate): string {
  return template === 'unknown' ? 'Unknown agent' : TEMPLATES[template].name;
}

const MAX_TITLE = 120;
const time = v.pipe(v.number(), v.finite(), v.minValue(0));
const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

const MetaSchema = v.object({
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/)),
  title: v.pipe(v.string(), v.maxLength(MAX_TITLE)),
  template: v.picklist([...TEMPLATE_IDS, 'unknown']),
  /**
   * The agent component id the template was read from (null: the session holds no agent state). Absent in entries
   * written before templates were read from the agent: those are checked once when opened.
   */
  agent: v.optional(v.nullable(sha256)),
  createdAt: time,
  updatedAt: time,
  /** Where the session runs now. Until placement lands every local session runs on this device. */
  runsOn: v.pipe(v.string(), v.maxLength(120)),
  /** Bytes of every object the session reaches (all branches, tool state); null until measured. */
  sizeBytes: v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0))),
  steps: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** What the current branch's steps cost on paid workers, micro-dollars (absent in entries written before costs were kept). */
  costMicros: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
});
export type SessionMeta = v.InferOutput<typeof MetaSchema>;

export const PRIVACY = ['this-device', 'my-devices', 'any'] as const;
export const OBJECTIVES = ['fastest', 'cheapest', 'balanced'] as const;
export const THEMES = ['system', 'light', 'dark'] as const;

/** The ranges Settings accepts for the engine's limits (phones run out of memory well before the top). */
export const LIMITS = {
  replyTokens: { min: 16, max: 8192 },
  contextSize: { min: 512, max: 32768 },
  usdPerHour: { min: 0.01, max: 10_000 },
} as const;

const SettingsSchema = v.object({
  relayUrl: v.pipe(v.string(), v.maxLength(2048)),
  privacy: v.picklist(PRIVACY),
  objective: v.picklist(OBJECTIVES),
  /** The most one step may cost on a paid worker (one that charges for its tokens), US dollars; 0: no paid workers. */
  budgetUsd: v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(1_000_000)),
  /** For the balanced objective: what an hour of the user's waiting is worth, US dollars (placement's one trade-off knob). */
  usdPerHour: v.pipe(v.number(), v.finite('it must be a number'), v.minValue(LIMITS.usdPerHour.min, `it must be at least $${LIMITS.usdPerHour.min}`), v.maxValue(LIMITS.usdPerHour.max, `it must be at most $${LIMITS.usdPerHour.max}`)),
  theme: v.picklist(THEMES),
  /** The longest reply the agent may generate in one go, in tokens (the model's max_tokens). */
  replyTokens: v.pipe(v.number(), v.integer('it must be a whole number'), v.minValue(LIMITS.replyTokens.min, `it must be at least ${LIMITS.replyTokens.min} tokens`), v.maxValue(LIMITS.replyTokens.max, `it must be at most ${LIMITS.replyTokens.max} tokens`)),
  /** The engine's context on this device, in tokens (at most the model's own): more holds longer chats, and costs memory. */
  contextSize: v.pipe(v.number(), v.integer('it must be a whole number'), v.minValue(LIMITS.contextSize.min, `it must be at least ${LIMITS.contextSize.min} tokens`), v.maxValue(LIMITS.contextSize.max, `it must be at most ${LIMITS.contextSize.max} tokens`)),
  /**
   * The web-llm model sessions run on where this device's GPU can (chosen on the Models screen); '' for the CPU.
   * The chosen GGUF model stays the session's model: wllama runs it when the GPU cannot, and the cloud runs it.
   */
  gpuModel: v.pipe(v.string(), v.maxLength(256)),
  /** Sessions' GGUF model runs on this device's GPU (llama.cpp's WebGPU backend) where it can and no GPU model is chosen. */
  ggufOnGpu: v.boolean(),
});
export type Settings = v.InferOutput<typeof SettingsSchema>;

/** How Settings names each field in an error. */
const SETTING_LABELS: Record<string, string> = {
  relayUrl: 'Relay URL',
  privacy: 'Default privacy',
  objective: 'Placement objective',
  budgetUsd: 'Budget per step on paid workers',
  usdPerHour: 'Value of your time',
  theme: 'Theme',
  replyTokens: 'Reply length',
  contextSize: 'Context size',
  gpuModel: 'GPU model',
  ggufOnGpu: 'GGUF models on the GPU',
};

export const DEFAULT_SETTINGS: Settings = { relayUrl: '', privacy: 'this-device', objective: 'balanced', budgetUsd: 0, usdPerHour: DEFAULT_PREFS.usdPerHour, theme: 'system', replyTokens: 512, contextSize: 4096, gpuModel: '', ggufOnGpu: true };

/**
 * What placement decides by, from Settings: the objective (with balanced's price of time), the privacy, and the
 * budget (0 rules paid workers out).
 */
export function placementPrefs(settings: Pick<Settings, 'objective' | 'privacy' | 'budgetUsd' | 'usdPerHour'>): PlacementPrefs {
  return { objective: settings.objective, privacy: settings.privacy, budgetUsd: settings.budgetUsd, usdPerHour: settings.usdPerHour };
}

/**
 * The model this device runs sessions with: one the relay serves (downloaded into the OPFS cache), or a GGUF file
 * the user picked from disk (copied into the same cache under `file`).
 */
const ModelChoiceSchema = v.variant('source', [
  v.object({ source: v.literal('relay'), id: sha256, name: v.pipe(v.string(), v.maxLength(256)), bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), contextSize: v.pipe(v.number(), v.integer(), v.minValue(1)), url: v.pipe(v.string(), v.url(), v.maxLength(2048)) }),
  v.object({ source: v.literal('file'), name: v.pipe(v.string(), v.maxLength(256)), bytes: v.pipe(v.number(), v.integer(), v.minValue(0)), file: v.pipe(v.string(), v.regex(/^[0-9a-f]{32}\.gguf$/)) }),
]);
export type ModelChoice = v.InferOutput<typeof ModelChoiceSchema>;

interface AppDb extends DBSchema {
  sessions: { key: string; value: SessionMeta };
  settings: { key: string; value: unknown };
  /** Per session, the last transcript read: derived from immutable checkpoints, so it is valid for its head. */
  transcripts: { key: string; value: unknown };
  /**
   * Per session, where it was last published (relay-client.ts serializePublished: snapshot, write token, key), so a
   * new share updates the same link. Holds secrets: it never leaves the device.
   */
  published: { key: string; value: string };
  /**
   * Per session away in the cloud, what it takes to follow and bring it back after a reload (session-mover.ts
   * serializeCloudState: the snapshot, write token, key, run id, next event). Holds secrets: it never leaves the device.
   */
  cloud: { key: string; value: string };
  /** Per session, the message sent but not yet in a checkpoint (see PendingInput). */
  pending: { key: string; value: unknown };
}

const PendingInputSchema = v.object({
  text: v.pipe(v.string(), v.minLength(1), v.maxLength(64 * 1024)),
  /** The branch it was sent on, and that branch's head then: the checkpoint holding it comes after that one. */
  branch: v.pipe(v.string(), v.minLength(1), v.maxLength(200)),
  base: sha256,
  at: time,
});
/**
 * A message the user sent that no checkpoint holds yet: it enters the session only with the checkpoint of the step
 * that consumes it, so until then it lives here, and a tab that dies meanwhile offers it again instead of losing it.
 */
export type PendingInput = v.InferOutput<typeof PendingInputSchema>;

/** A cached transcript: every checkpoint from the root to `head` (ids are content hashes: never stale). */
const CachedTranscriptSchema = v.object({
  head: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  steps: v.array(
    v.object({
      id: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
      at: time,
      n: v.pipe(v.number(), v.integer(), v.minValue(0)),
      events: v.array(v.looseObject({ type: v.picklist(['user', 'generation', 'tool-call', 'tool-result', 'reply', 'placement', 'fork']), at: time })),
    }),
  ),
});

/** One user-visible step of a transcript: the events of one checkpoint. */
export interface TranscriptStep {
  id: ObjectId;
  at: number;
  events: SessionEvent[];
}

/** A deleted session, kept in memory until the undo window closes. */
export interface DeletedSession {
  meta: SessionMeta;
  refs: Ref[];
  /** Its app-side records, put back by an undo. */
  records: { cloud?: string; pending?: unknown };
}

/** A node of the checkpoint DAG as the tree view draws it. */
export interface TreeNode {
  id: ObjectId;
  parent: ObjectId | null;
  at: number;
  /** Branches whose head is this checkpoint. */
  heads: string[];
  /** The branch this node is drawn on (the first branch, current first, whose history holds it). */
  lane: string;
  summary: string;
  steps: number;
}

export interface SessionTree {
  branch: string;
  branches: { name: string; head: ObjectId }[];
  /** Oldest first. */
  nodes: TreeNode[];
  /** The head the last rollback of the current branch moved away from, if it can still be restored. */
  undoRollback: { from: ObjectId; to: ObjectId } | null;
}

export interface OpenOptions {
  storeName?: string;
  appDbName?: string;
}

/** Throws a typed error unless `title` is a usable session title; returns it trimmed. */
export function checkTitle(title: string): string {
  const t = title.trim();
  if (t.length === 0) throw new FerryError('app/bad-title', 'A session needs a title; type at least one character.');
  if (t.length > MAX_TITLE) throw new FerryError('app/bad-title', `Titles are at most ${MAX_TITLE} characters; shorten it.`);
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

/** A one-line summary of a checkpoint for the tree view. */
export function summarize(cp: Pick<Checkpoint, 'events' | 'parent'>): string {
  for (const e of cp.events) {
    switch (e.type) {
      case 'user':
        return `You: ${e.text}`;
      case 'generation':
        return `Agent: ${e.text}`;
      case 'tool-call':
        return `Tool ${e.tool}`;
      case 'tool-result':
        return `Tool result (${e.ok ? 'ok' : 'failed'})`;
      case 'reply':
        return `Agent: ${e.text}`;
      case 'placement':
        return `Moved ${e.from} → ${e.to}`;
      case 'fork':
        return `Fork "${e.branch}" from "${e.fromBranch}"`;
    }
  }
  return cp.parent === null ? 'Session started' : 'Checkpoint';
}

function titleFrom(events: readonly SessionEvent[], fallback: string): string {
  const first = events.find((e): e is Extract<SessionEvent, { type: 'user' }> => e.type === 'user');
  const text = first?.text.replace(/\s+/g, ' ').trim() ?? '';
  return text ? text.slice(0, 60) : fallback;
}

export class AppState {
  private constructor(
    readonly store: Store,
    private readonly db: IDBPDatabase<AppDb>,
  ) {}

  static async open(opts: OpenOptions = {}): Promise<AppState> {
    const store = openIdbStore({ name: opts.storeName ?? 'ferry' });
    let db: IDBPDatabase<AppDb>;
    try {
      db = await openDB<AppDb>(opts.appDbName ?? 'ferry-app', 4, {
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
        },
        blocking() {
          db.close();
        },
      });
    } catch (cause) {
      throw idbError(cause, 'open the session list');
    }
    return new AppState(store, db);
  }

  // ---- the catalogue -------------------------------------------------------------------------------------------

  /** Every session in the store, newest activity first. Repairs the catalogue against the store's refs. */
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
    for (const id of inStore) if (!known.has(id)) out.push(await this.adopt(id, 'Untitled session'));
    return out.sort((a, b) => b.updatedAt - a.updatedAt);
  }

  async get(id: string): Promise<SessionMeta> {
    const row = await this.db.get('sessions', id);
    const meta = v.safeParse(MetaSchema, row);
    if (meta.success) return meta.output;
    if ((await this.store.getRef(`sessions/${id}/head`)) !== undefined) return this.adopt(id, 'Untitled session');
    throw new FerryError('session/not-found', 'This session is not on this device: it was deleted, or the link points at another device. Import its .ferry file to open it here.');
  }

  /** Catalogues a session the agent worker has just created in the store (its agent and tools' first state). */
  async register(id: string, template: TemplateId, agent: string, title?: string): Promise<SessionMeta> {
    if (!TEMPLATE_IDS.includes(template)) throw new FerryError('app/bad-template', `Unknown template "${String(template)}"; pick one of ${TEMPLATE_IDS.join(', ')}.`);
    const now = Date.now();
    const meta: SessionMeta = {
      id,
      title: checkTitle(title ?? `New ${TEMPLATES[template].name.toLowerCase()} session`),
      template,
      agent,
      createdAt: now,
      updatedAt: now,
      runsOn: 'This device',
      sizeBytes: null,
      steps: 0,
    };
    await this.put(meta);
    void this.measure(meta.id);
    return meta;
  }

  async rename(id: string, title: string): Promise<SessionMeta> {
    const checked = checkTitle(title);
    return this.change(id, (meta) => ({ ...meta, title: checked }));
  }

  /** Removes a session's refs and catalogue entry; its objects stay until the undo window has passed. */
  async remove(id: string): Promise<DeletedSession> {
    const meta = await this.get(id);
    const refs = await this.store.listRefs(sessionPrefix(id));
    const [cloud, pending] = await Promise.all([this.cloudRecord(id), this.db.get('pending', id).catch(() => undefined)]);
    await this.store.commit([], refs.map((r) => ({ name: r.name, expect: r.id, next: null, reason: 'delete' })));
    await this.db.delete('sessions', id);
    for (const store of ['transcripts', 'published', 'cloud', 'pending'] as const) await this.db.delete(store, id).catch(() => undefined);
    return { meta, refs, records: { ...(cloud ? { cloud } : {}), ...(pending ? { pending } : {}) } };
  }

  async undoRemove(deleted: DeletedSession): Promise<SessionMeta> {
    await this.store.commit([], deleted.refs.map((r) => ({ name: r.name, expect: null, next: r.id, reason: 'undo delete' })));
    await this.put(deleted.meta);
    const { cloud, pending } = deleted.records;
    if (cloud) await this.write(() => this.db.put('cloud', cloud, deleted.meta.id));
    if (pending) await this.write(() => this.db.put('pending', pending, deleted.meta.id));
    return deleted.meta;
  }

  // ---- one session ---------------------------------------------------------------------------------------------

  openSession(id: string): Promise<Session> {
    return Session.open(this.store, id);
  }

  /**
   * The current branch's steps, oldest first (checkpoints without events, like the root, are left out). Reads only
   * the checkpoints that differ from the transcript read last time (after a send, one; after a rollback, none), so
   * opening a long session does not walk its whole history again.
   */
  async transcript(session: Session): Promise<TranscriptStep[]> {
    return (await this.chain(session)).filter((s) => s.events.length > 0);
  }

  /** Every checkpoint of the current branch, root first, each with its step count; cached per head. */
  private async chain(session: Session): Promise<(TranscriptStep & { n: number })[]> {
    const head = await session.head();
    const cached = v.safeParse(CachedTranscriptSchema, await this.db.get('transcripts', session.id).catch(() => undefined));
    type Entry = TranscriptStep & { n: number };
    if (cached.success && cached.output.head === head) return cached.output.steps as Entry[];
    const known = new Map((cached.success ? cached.output.steps : []).map((s, i) => [s.id, i]));
    const walked: Entry[] = [];
    let id: ObjectId | null = head;
    let prefix: Entry[] = [];
    while (id !== null) {
      const at = known.get(id);
      if (at !== undefined && cached.success) {
        prefix = cached.output.steps.slice(0, at + 1) as Entry[];
        break;
      }
      const cp = await session.checkpoint(id);
      walked.push({ id, at: cp.at, n: cp.counters.steps, events: cp.events });
      id = cp.parent;
    }
    const steps = prefix.concat(walked.reverse());
    // A cache write that fails (quota) costs only speed next time.
    await this.db.put('transcripts', { head, steps }, session.id).catch(() => undefined);
    return steps;
  }

  /** Records that the agent changed the session (a run, a move back): its activity time, steps, cost and size. */
  async ran(session: Session): Promise<void> {
    await this.touch(session);
  }

  /** Records where the session runs now ("This device", "Cloud worker"). */
  async setRunsOn(id: string, runsOn: string): Promise<SessionMeta> {
    return this.change(id, (meta) => ({ ...meta, runsOn: runsOn.slice(0, 120) }));
  }

  async fork(session: Session, at: ObjectId, branch: string, switchTo = true): Promise<void> {
    await session.fork(at, branch);
    if (switchTo) await session.switchBranch(branch);
    await this.touch(session);
  }

  async rollback(session: Session, to: ObjectId): Promise<void> {
    await session.rollback(to);
    await this.touch(session);
  }

  async switchBranch(session: Session, branch: string): Promise<void> {
    await session.switchBranch(branch);
    await this.touch(session);
  }

  /** Moves the current branch back to the head its last rollback left (kept in the reflog). */
  async undoRollback(session: Session): Promise<void> {
    const undo = await this.lastRollback(session);
    if (!undo) throw new FerryError('app/nothing-to-undo', `Branch "${session.branch}" has no rollback to undo (or it has moved since).`);
    await this.store.setRef({ name: branchRef(session.id, session.branch), expect: undo.to, next: undo.from, reason: `undo rollback to ${undo.to}` });
    await this.touch(session);
  }

  /** The whole DAG: every branch's history merged, each node drawn on the first branch that holds it. */
  async tree(session: Session): Promise<SessionTree> {
    const branches = (await session.branches()).sort((a, b) => (a.name === session.branch ? -1 : b.name === session.branch ? 1 : a.name.localeCompare(b.name)));
    const nodes = new Map<ObjectId, TreeNode>();
    // The current branch comes from the cached chain; other branches are walked until they meet a drawn node.
    const chain = await this.chain(session);
    chain.forEach((c, i) => {
      const parent = i === 0 ? null : chain[i - 1]!.id;
      nodes.set(c.id, { id: c.id, parent, at: c.at, heads: [], lane: session.branch, summary: summarize({ events: c.events, parent }), steps: c.n });
    });
    const current = chain.at(-1);
    if (current) nodes.get(current.id)!.heads.push(session.branch);
    for (const b of branches) {
      if (b.name === session.branch && current?.id === b.head) continue;
      // Walk back from the branch head only until it meets a checkpoint already drawn.
      for (let id: ObjectId | null = b.head; id !== null; ) {
        const existing = nodes.get(id);
        if (existing) {
          if (id === b.head) existing.heads.push(b.name);
          break;
        }
        const cp = await session.checkpoint(id);
        nodes.set(id, { id, parent: cp.parent, at: cp.at, heads: id === b.head ? [b.name] : [], lane: b.name, summary: summarize(cp), steps: cp.counters.steps });
        id = cp.parent;
      }
    }
    // Parents before children: order by depth, then time.
    const depth = new Map<ObjectId, number>();
    const depthOf = (id: ObjectId): number => {
      const path: ObjectId[] = [];
      let cur: ObjectId | null = id;
      while (cur !== null && !depth.has(cur)) {
        path.push(cur);
        cur = nodes.get(cur)?.parent ?? null;
      }
      let d = cur === null ? -1 : depth.get(cur)!;
      for (let i = path.length - 1; i >= 0; i--) depth.set(path[i]!, ++d);
      return depth.get(id)!;
    };
    const ordered = [...nodes.values()].sort((a, b) => depthOf(a.id) - depthOf(b.id) || a.at - b.at);
    return { branch: session.branch, branches: branches.map((b) => ({ name: b.name, head: b.head })), nodes: ordered, undoRollback: await this.lastRollback(session) };
  }

  /** Two branches' transcripts split at their newest common checkpoint. */
  async compare(session: Session, a: string, b: string): Promise<{ common: TranscriptStep[]; onlyA: TranscriptStep[]; onlyB: TranscriptStep[] }> {
    const [ha, hb] = await Promise.all([session.history(a), session.history(b)]);
    const inB = new Set(hb.map((h) => h.id));
    const split = ha.findIndex((h) => inB.has(h.id));
    const base = split === -1 ? null : ha[split]!.id;
    const baseInB = base === null ? hb.length : hb.findIndex((h) => h.id === base);
    return {
      common: split === -1 ? [] : toSteps(ha.slice(split)),
      onlyA: toSteps(ha.slice(0, split === -1 ? ha.length : split)),
      onlyB: toSteps(hb.slice(0, baseInB)),
    };
  }

  // ---- files ---------------------------------------------------------------------------------------------------

  async exportFile(id: string): Promise<{ name: string; bytes: Uint8Array }> {
    const meta = await this.get(id);
    const bytes = await exportSession(this.store, id);
    const base = meta.title.replace(/[^\p{L}\p{N}._ -]+/gu, '').trim().replace(/\s+/g, '-').slice(0, 60) || 'session';
    return { name: `${base}.ferry`, bytes };
  }

  /** Imports a `.ferry` file; nothing is stored unless the whole file checks out. */
  async importFile(bytes: Uint8Array, fileName = ''): Promise<SessionMeta> {
    let id: string;
    try {
      id = await importSession(this.store, bytes);
    } catch (err) {
      if (err instanceof FerryError && err.code === 'snapshot/bad-container' && !fileName.endsWith('.ferry')) {
        throw new FerryError('snapshot/bad-container', `"${fileName || 'This file'}" is not a Ferry session file; choose a .ferry file exported from Ferry.`, { cause: err });
      }
      throw err;
    }
    const fromName = fileName.replace(/\.ferry$/i, '').replace(/[-_]+/g, ' ').trim().slice(0, MAX_TITLE);
    return this.adopt(id, 'Imported session', fromName || undefined);
  }

  // ---- sharing -------------------------------------------------------------------------------------------------

  /** The saved publish record of a session (opaque here: relay-client.ts restorePublished validates it). */
  async publishedRecord(id: string): Promise<string | undefined> {
    const text = await this.db.get('published', id).catch(() => undefined);
    return typeof text === 'string' ? text : undefined;
  }

  savePublishedRecord(id: string, record: string): Promise<unknown> {
    return this.write(() => this.db.put('published', record, id));
  }

  /**
   * Reads the template of a session catalogued before templates were read from its agent (an import used to be
   * catalogued as an assistant), and corrects its entry. Entries that name their agent are returned as they are.
   */
  async checkTemplate(id: string): Promise<SessionMeta> {
    const meta = await this.get(id);
    if (meta.agent !== undefined) return meta;
    const agent = await this.agentOf(id);
    return this.change(id, (current) => ({ ...current, template: agent.template ?? 'unknown', agent: agent.agent }));
  }

  // ---- a session away in the cloud ---------------------------------------------------------------------------

  /** The saved record of a session in the cloud (opaque here: session-mover.ts restoreCloudState validates it). */
  async cloudRecord(id: string): Promise<string | undefined> {
    const text = await this.db.get('cloud', id).catch(() => undefined);
    return typeof text === 'string' ? text : undefined;
  }

  /** Saves (or, with null, drops) the record of a session in the cloud. */
  saveCloudRecord(id: string, record: string | null): Promise<unknown> {
    return this.write<unknown>(() => (record === null ? this.db.delete('cloud', id) : this.db.put('cloud', record, id)));
  }

  // ---- a message not yet checkpointed ------------------------------------------------------------------------

  /** Remembers `text`, sent now on the session's current branch, until a checkpoint holds it. */
  async savePending(session: Session, text: string): Promise<PendingInput> {
    const pending = v.parse(PendingInputSchema, { text, branch: session.branch, base: await session.head(), at: Date.now() });
    await this.write(() => this.db.put('pending', pending, session.id));
    return pending;
  }

  clearPending(id: string): Promise<unknown> {
    return this.write(() => this.db.delete('pending', id));
  }

  /**
   * The session's message still waiting for a checkpoint, or null. One that a checkpoint after its base on its
   * branch now holds has landed: its record is dropped here. An unreadable record is dropped too (it says nothing).
   */
  async pendingInput(session: Session): Promise<PendingInput | null> {
    const row = await this.db.get('pending', session.id).catch(() => undefined);
    if (row === undefined) return null;
    const parsed = v.safeParse(PendingInputSchema, row);
    if (parsed.success && !(await this.landed(session, parsed.output))) return parsed.output;
    await this.clearPending(session.id);
    return null;
  }

  /**
   * Whether a checkpoint after `pending.base` on its branch holds the message. A branch that no longer reaches the
   * base (rolled back past it) holds it nowhere: an older message with the same words does not count.
   */
  private async landed(session: Session, pending: PendingInput): Promise<boolean> {
    let found = false;
    for (let id = (await this.store.getRef(branchRef(session.id, pending.branch))) ?? null; id !== null; ) {
      if (id === pending.base) return found;
      const cp = await session.checkpoint(id);
      found ||= cp.events.some((e) => e.type === 'user' && e.text === pending.text);
      id = cp.parent;
    }
    return false;
  }

  // ---- the model ---------------------------------------------------------------------------------------------

  async modelChoice(): Promise<ModelChoice | null> {
    const parsed = v.safeParse(ModelChoiceSchema, await this.db.get('settings', 'model').catch(() => undefined));
    return parsed.success ? parsed.output : null;
  }

  async saveModelChoice(choice: ModelChoice): Promise<ModelChoice> {
    const parsed = v.safeParse(ModelChoiceSchema, choice);
    if (!parsed.success) throw new FerryError('app/bad-model', `The model record is invalid (${parsed.issues[0]?.message ?? 'invalid'}); choose the model again on the Models screen.`);
    await this.write(() => this.db.put('settings', parsed.output, 'model'));
    return parsed.output;
  }

  // ---- settings ------------------------------------------------------------------------------------------------

  async settings(): Promise<Settings> {
    const parsed = v.safeParse(SettingsSchema, { ...DEFAULT_SETTINGS, ...((await this.db.get('settings', 'settings')) as object | undefined) });
    return parsed.success ? parsed.output : { ...DEFAULT_SETTINGS };
  }

  async saveSettings(next: Settings): Promise<Settings> {
    const parsed = v.safeParse(SettingsSchema, next);
    if (!parsed.success) {
      const issue = parsed.issues[0];
      const key = issue ? v.getDotPath(issue) : null;
      throw new FerryError('app/bad-settings', `Setting "${(key && SETTING_LABELS[key]) ?? key ?? '?'}" is invalid: ${issue?.message ?? 'invalid'}. Correct it and save again.`);
    }
    if (parsed.output.replyTokens >= parsed.output.contextSize) {
      throw new FerryError('app/bad-settings', `The reply length (${parsed.output.replyTokens} tokens) must be smaller than the context size (${parsed.output.contextSize} tokens), which also holds the conversation; lower the one or raise the other.`);
    }
    if (parsed.output.relayUrl) {
      let url: URL;
      try {
        url = new URL(parsed.output.relayUrl);
      } catch {
        throw new FerryError('app/bad-relay-url', `"${parsed.output.relayUrl}" is not a URL; enter one like https://relay.example.org (or leave it empty to use this site).`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new FerryError('app/bad-relay-url', 'The relay URL must start with https:// (or http:// on a local network).');
    }
    await this.write(() => this.db.put('settings', parsed.output, 'settings'));
    return parsed.output;
  }

  close(): void {
    this.db.close();
    void this.store.close();
  }

  // ---- internals -----------------------------------------------------------------------------------------------

  private async lastRollback(session: Session): Promise<{ from: ObjectId; to: ObjectId } | null> {
    const log = await session.reflog();
    const last = log.at(-1);
    if (!last || !last.reason.startsWith('rollback from ') || last.from === null || last.to === null) return null;
    return (await this.store.getRef(branchRef(session.id, session.branch))) === last.to ? { from: last.from, to: last.to } : null;
  }

  /**
   * Catalogues a session found in the store (imported, or written by another tab), with the template its agent
   * component belongs to.
   */
  private async adopt(id: string, fallbackTitle: string, title?: string): Promise<SessionMeta> {
    const session = await Session.open(this.store, id);
    const head = await session.checkpoint(await session.head());
    const history = await session.history();
    const firstUser = history.findLast((h) => h.checkpoint.events.some((e) => e.type === 'user'));
    const root = history.at(-1)!.checkpoint;
    // Unread (the component files unreachable): 'unknown' for now, and no agent, so opening it reads it again.
    const agent = await this.agentOf(id).catch(() => undefined);
    const meta: SessionMeta = {
      id,
      title: checkTitle(title ?? titleFrom(firstUser?.checkpoint.events ?? [], fallbackTitle).slice(0, MAX_TITLE)),
      template: agent?.template ?? 'unknown',
      ...(agent ? { agent: agent.agent } : {}),
      createdAt: root.at,
      updatedAt: Math.max(head.at, root.at),
      runsOn: 'This device',
      sizeBytes: null,
      steps: head.counters.steps,
      costMicros: head.counters.costMicros,
    };
    await this.put(meta);
    await this.transcript(session).catch(() => undefined);
    void this.measure(id);
    return meta;
  }

  /** Which template the session's agent belongs to (template-components.ts, loaded only when a session is adopted). */
  private async agentOf(id: string): Promise<SessionAgent> {
    const { sessionAgent } = await import('./template-components.ts');
    return sessionAgent(this.store, id);
  }

  private async touch(session: Session): Promise<void> {
    const head = await session.checkpoint(await session.head());
    await this.change(session.id, (meta) => ({ ...meta, updatedAt: Date.now(), steps: head.counters.steps, costMicros: head.counters.costMicros }));
    void this.measure(session.id);
  }

  /** Sessions being measured; `dirty` asks for one more walk after the current one (changes coalesce). */
  private readonly measuring = new Map<string, { dirty: boolean; done: Promise<void> }>();

  /** Measures a session's stored size in the background: one walk at a time per session, repeated once if it changed meanwhile. */
  measure(id: string): Promise<void> {
    const running = this.measuring.get(id);
    if (running) {
      running.dirty = true;
      return running.done;
    }
    const job = { dirty: true, done: Promise.resolve() };
    job.done = (async () => {
      try {
        while (job.dirty) {
          job.dirty = false;
          await this.measureOnce(id);
        }
      } finally {
        this.measuring.delete(id);
      }
    })();
    this.measuring.set(id, job);
    return job.done;
  }

  private async measureOnce(id: string): Promise<void> {
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

  /** Called when a background job changed a catalogue entry (e.g. its size). */
  onChange: ((id: string) => void) | undefined;

  private put(meta: SessionMeta): Promise<unknown> {
    return this.write(() => this.db.put('sessions', meta));
  }

  /**
   * Edits a session's catalogue entry in one transaction, so edits made at the same time (a run's steps and cost, a
   * size measured in the background) never overwrite each other with a stale copy. `edit` returning undefined leaves
   * the entry as it is; the result is the entry written, or undefined when none was.
   */
  private update(id: string, edit: (meta: SessionMeta) => SessionMeta | undefined): Promise<SessionMeta | undefined> {
    return this.write(async () => {
      const tx = this.db.transaction('sessions', 'readwrite');
      const row = v.safeParse(MetaSchema, await tx.store.get(id));
      const next = row.success ? edit(row.output) : undefined;
      if (next) await tx.store.put(next);
      await tx.done;
      return next;
    });
  }

  /** `update` of a session catalogued first if the store has it and the list does not; not-found when neither. */
  private async change(id: string, edit: (meta: SessionMeta) => SessionMeta): Promise<SessionMeta> {
    await this.get(id);
    return (await this.update(id, edit)) ?? this.get(id);
  }

  private async write<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      throw idbError(cause, 'save the session list');
    }
  }
}

function toSteps(history: readonly HistoryEntry[]): TranscriptStep[] {
  const out: TranscriptStep[] = [];
  for (let i = history.length - 1; i >= 0; i--) {
    const h = history[i]!;
    if (h.checkpoint.parent === null && h.checkpoint.events.length === 0) continue;
    out.push({ id: h.id, at: h.checkpoint.at, events: h.checkpoint.events });
  }
  return out;
}
