/**
 * A session is a DAG of checkpoints in a Store. Branches are refs to checkpoints; the head ref names the current
 * branch. Every operation is one atomic commit whose ref moves are compare-and-swap, so two writers never lose
 * each other's work silently and a reader never sees half a step.
 */
import { FerryError } from '../errors.ts';
import { objectId, type ObjectId, type ReflogEntry, type Store, type StoredObject } from '../store/index.ts';
import { chunkDelta, chunkImage, readChunkList, readImage, readImages, type ImageDelta, type PreviousImage } from './chunks.ts';
import { assertBranchName, assertComponentName, assertSessionId, branchRef, headRef, newSessionId, sessionPrefix } from './refs.ts';
import { FORMAT_VERSION, PAGE_SIZE, decodeObject, encodeObject, type Checkpoint, type Counters, type LlmSettings, type SessionEvent } from './schema.ts';

export interface SessionInit {
  id?: string;
  llm: LlmSettings;
  components?: Record<string, Uint8Array>;
  branch?: string;
  now?: number;
}

export interface Step {
  events: SessionEvent[];
  /**
   * The components that changed this step: a whole image (compared page by page with the previous one), a delta
   * of changed pages (cost independent of the image's size), or null to remove the component.
   */
  components?: Record<string, Uint8Array | ImageDelta | null>;
  llm?: LlmSettings;
  costMicros?: number;
  timeMs?: number;
  now?: number;
}

export interface Branch {
  name: string;
  head: ObjectId;
}

export interface HistoryEntry {
  id: ObjectId;
  checkpoint: Checkpoint;
}

const ZERO: Counters = { steps: 0, tokens: 0, costMicros: 0, timeMs: 0 };

export class Session {
  /** Decoded checkpoints by id: objects are immutable, so a cache never goes stale. */
  private readonly checkpoints = new Map<ObjectId, Checkpoint>();
  /** The last image written or read per component, so the next step hashes only the pages that differ. */
  private readonly images = new Map<string, PreviousImage & { listId: ObjectId }>();

  private constructor(
    readonly store: Store,
    readonly id: string,
    private current: string,
  ) {}

  static async create(store: Store, init: SessionInit): Promise<Session> {
    const id = init.id ?? newSessionId();
    assertSessionId(id);
    const branch = init.branch ?? 'main';
    assertBranchName(branch);
    if ((await store.listRefs(sessionPrefix(id))).length > 0) {
      throw new FerryError('session/exists', `Session ${id} already exists in this store; open it instead of creating it.`);
    }
    const session = new Session(store, id, branch);
    const objects: StoredObject[] = [];
    const components: Record<string, ObjectId> = {};
    for (const [name, image] of Object.entries(init.components ?? {})) {
      assertComponentName(name);
      components[name] = await session.chunk(name, image, undefined, objects);
    }
    const root: Checkpoint = { k: 'checkpoint', v: FORMAT_VERSION, parent: null, events: [], components, llm: init.llm, counters: ZERO, at: init.now ?? Date.now() };
    const rootId = await session.push(root, objects);
    const head = await session.pushHead(branch, objects);
    await store.commit(objects, [
      { name: branchRef(id, branch), expect: null, next: rootId, reason: 'create' },
      { name: headRef(id), expect: null, next: head, reason: 'create' },
    ]);
    return session;
  }

  static async open(store: Store, id: string): Promise<Session> {
    assertSessionId(id);
    const headId = await store.getRef(headRef(id));
    if (!headId) throw new FerryError('session/not-found', `Session ${id} is not in this store; import or sync it first.`);
    const bytes = await store.get(headId);
    if (!bytes) throw new FerryError('store/missing-object', `The head of session ${id} points at a missing object; run the store's verify().`);
    return new Session(store, id, decodeObject('head', bytes).branch);
  }

  /** The current branch's name. */
  get branch(): string {
    return this.current;
  }

  async head(branch = this.current): Promise<ObjectId> {
    const id = await this.store.getRef(branchRef(this.id, branch));
    if (!id) throw new FerryError('session/no-branch', `Session ${this.id} has no branch "${branch}".`);
    return id;
  }

  async branches(): Promise<Branch[]> {
    const prefix = `${sessionPrefix(this.id)}branches/`;
    return (await this.store.listRefs(prefix)).map((r) => ({ name: r.name.slice(prefix.length), head: r.id }));
  }

  async checkpoint(id: ObjectId): Promise<Checkpoint> {
    const cached = this.checkpoints.get(id);
    if (cached) return cached;
    const bytes = await this.store.get(id);
    if (!bytes) throw new FerryError('store/missing-object', `Checkpoint ${id} is not in the store.`);
    const cp = decodeObject('checkpoint', bytes);
    this.checkpoints.set(id, cp);
    return cp;
  }

  /** Appends one agent step to the current branch as a new checkpoint; returns its id. */
  async append(step: Step): Promise<ObjectId> {
    const parentId = await this.head();
    const parent = await this.checkpoint(parentId);
    const objects: StoredObject[] = [];
    const components = { ...parent.components };
    for (const [name, image] of Object.entries(step.components ?? {})) {
      assertComponentName(name);
      if (image === null) delete components[name];
      else if (image instanceof Uint8Array) components[name] = await this.chunk(name, image, parent.components[name], objects);
      else components[name] = await this.chunkDelta(image, parent.components[name], objects);
    }
    const tokens = step.events.reduce((n, e) => n + (e.type === 'generation' ? e.tokens.length : 0), 0);
    const cp: Checkpoint = {
      k: 'checkpoint',
      v: FORMAT_VERSION,
      parent: parentId,
      events: step.events,
      components,
      llm: step.llm ?? parent.llm,
      counters: {
        steps: parent.counters.steps + 1,
        tokens: parent.counters.tokens + tokens,
        costMicros: parent.counters.costMicros + (step.costMicros ?? 0),
        timeMs: parent.counters.timeMs + (step.timeMs ?? 0),
      },
      at: step.now ?? Date.now(),
    };
    const id = await this.push(cp, objects);
    await this.store.commit(objects, [{ name: branchRef(this.id, this.current), expect: parentId, next: id, reason: 'append' }]);
    return id;
  }

  /**
   * Creates branch `name` at checkpoint `at`: one small marker checkpoint (a fork event, everything else shared by
   * reference) and one ref, whatever the session's length. Does not switch to it.
   */
  async fork(at: ObjectId, name: string, now = Date.now()): Promise<ObjectId> {
    assertBranchName(name);
    const base = await this.checkpoint(at);
    const marker: Checkpoint = {
      ...base,
      parent: at,
      events: [{ type: 'fork', from: at, fromBranch: this.current, branch: name, at: now }],
      at: now,
    };
    const objects: StoredObject[] = [];
    const id = await this.push(marker, objects);
    await this.store.commit(objects, [{ name: branchRef(this.id, name), expect: null, next: id, reason: `fork from ${this.current}` }]).catch((err: unknown) => {
      throw err instanceof FerryError && err.code === 'store/ref-conflict'
        ? new FerryError('session/branch-exists', `Branch "${name}" already exists in session ${this.id}; pick another name.`, { cause: err })
        : err;
    });
    return id;
  }

  /** Moves the current branch back to one of its ancestors. The old head stays in the reflog. */
  async rollback(to: ObjectId): Promise<void> {
    const head = await this.head();
    const ancestors = new Set((await this.history()).map((h) => h.id));
    if (!ancestors.has(to)) {
      throw new FerryError('session/not-ancestor', `Checkpoint ${to} is not on branch "${this.current}"; roll back only to one of its own checkpoints (or fork there).`);
    }
    await this.store.setRef({ name: branchRef(this.id, this.current), expect: head, next: to, reason: `rollback from ${head}` });
  }

  async switchBranch(name: string): Promise<void> {
    assertBranchName(name);
    await this.head(name);
    const objects: StoredObject[] = [];
    const next = await this.pushHead(name, objects);
    const expect = await this.store.getRef(headRef(this.id));
    await this.store.commit(objects, [{ name: headRef(this.id), expect: expect ?? null, next, reason: `switch to ${name}` }]);
    this.current = name;
  }

  /** Checkpoints from `from` (a branch name or checkpoint id; default the current branch) back to the root. */
  async history(from: string = this.current): Promise<HistoryEntry[]> {
    let id: ObjectId | null = /^[0-9a-f]{64}$/.test(from) ? from : await this.head(from);
    const out: HistoryEntry[] = [];
    while (id !== null) {
      const checkpoint = await this.checkpoint(id);
      out.push({ id, checkpoint });
      id = checkpoint.parent;
    }
    return out;
  }

  /**
   * Tokens of each of the last `max` finished generations on the current branch, oldest first: how long the
   * session's replies have been (the placement's guide to the next one, placement/reply-length.ts). Generations cut
   * short (cancelled, or handed on mid-reply) are not whole replies and are left out. It reads at most 32
   * checkpoints per reply asked for, so a long run of tool steps cannot make it walk a whole long session.
   */
  async recentReplyLengths(max: number): Promise<number[]> {
    const out: number[] = [];
    let id: ObjectId | null = await this.head();
    for (let read = 0; id !== null && out.length < max && read < 32 * max; read++) {
      const checkpoint = await this.checkpoint(id);
      for (let i = checkpoint.events.length - 1; i >= 0 && out.length < max; i--) {
        const e = checkpoint.events[i]!;
        if (e.type === 'generation' && e.finish !== 'abort') out.push(e.tokens.length);
      }
      id = checkpoint.parent;
    }
    return out.reverse();
  }

  /** The newest checkpoint both branches (or checkpoints) descend from, or null if they share none. */
  async commonAncestor(a: string, b: string): Promise<ObjectId | null> {
    const seen = new Set((await this.history(a)).map((h) => h.id));
    for (const h of await this.history(b)) if (seen.has(h.id)) return h.id;
    return null;
  }

  async reflog(branch = this.current): Promise<ReflogEntry[]> {
    return this.store.reflog(branchRef(this.id, branch));
  }

  /**
   * Images by the chunk-list ids checkpoints name them by, read together (two store reads for all of them). Unlike
   * `component`, it keeps no copy for the next step's chunking.
   */
  async imagesOf(listIds: readonly ObjectId[]): Promise<Uint8Array[]> {
    return (await readImages(this.store, listIds)).map((r) => r.image);
  }

  /** A component's image as of a checkpoint. */
  async component(at: ObjectId, name: string): Promise<Uint8Array> {
    const listId = (await this.checkpoint(at)).components[name];
    if (!listId) throw new FerryError('session/no-component', `Checkpoint ${at} has no component "${name}".`);
    const { image, list } = await readImage(this.store, listId);
    this.images.set(name, { image: image.slice(), list, listId });
    return image;
  }

  private async chunk(name: string, image: Uint8Array, parentList: ObjectId | undefined, objects: StoredObject[]): Promise<ObjectId> {
    const cached = this.images.get(name);
    const usable = cached && cached.listId === parentList ? cached : undefined;
    const chunked = await chunkImage(image, usable);
    objects.push(...chunked.objects);
    if (usable && usable.image.length === image.length) {
      // Patch our private copy page by page: a step costs a copy of what changed, not of the whole image.
      chunked.list.pages.forEach((id, i) => {
        if (id !== usable.list.pages[i]) usable.image.set(image.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), i * PAGE_SIZE);
      });
      this.images.set(name, { image: usable.image, list: chunked.list, listId: chunked.listId });
    } else {
      this.images.set(name, { image: image.slice(), list: chunked.list, listId: chunked.listId });
    }
    return chunked.listId;
  }

  private async chunkDelta(delta: ImageDelta, parentList: ObjectId | undefined, objects: StoredObject[]): Promise<ObjectId> {
    const chunked = await chunkDelta(parentList === undefined ? undefined : await readChunkList(this.store, parentList), delta);
    objects.push(...chunked.objects);
    return chunked.listId;
  }

  private async push(cp: Checkpoint, objects: StoredObject[]): Promise<ObjectId> {
    const bytes = encodeObject('checkpoint', cp);
    const id = await objectId(bytes);
    objects.push({ id, bytes });
    this.checkpoints.set(id, cp);
    return id;
  }

  private async pushHead(branch: string, objects: StoredObject[]): Promise<ObjectId> {
    const bytes = encodeObject('head', { k: 'head', v: FORMAT_VERSION, branch });
    const id = await objectId(bytes);
    objects.push({ id, bytes });
    return id;
  }
}

