/**
 * A session's current branch as the transcript shows it, read from the store with a cache per session in the app
 * database: checkpoint ids are content hashes, so a cached chain stays valid for its head, and reading after a send
 * walks back only to the first checkpoint already cached (after a rollback, none at all).
 */
import * as v from 'valibot';
import { chainTo, layoutTree, type ChainStep, type Session, type SessionTree, type TranscriptStep } from '../core/session/index.ts';
import type { ObjectId } from '../core/store/index.ts';
import type { AppDatabase } from './app-db.ts';

const time = v.pipe(v.number(), v.finite(), v.minValue(0));
const hash = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

const CachedChainSchema = v.object({
  head: hash,
  steps: v.array(
    v.object({
      id: hash,
      at: time,
      n: v.pipe(v.number(), v.integer(), v.minValue(0)),
      events: v.array(v.looseObject({ type: v.picklist(['user', 'generation', 'tool-call', 'tool-result', 'reply', 'placement', 'fork', 'compaction']), at: time })),
    }),
  ),
});

export class Transcripts {
  constructor(private readonly db: AppDatabase) {}

  /** The current branch's steps, oldest first (checkpoints without events, like the root, are left out). */
  async steps(session: Session): Promise<TranscriptStep[]> {
    return (await this.chain(session)).filter((s) => s.events.length > 0);
  }

  /** Every checkpoint of the current branch, root first, each with its step count. */
  async chain(session: Session): Promise<ChainStep[]> {
    const head = await session.head();
    const cached = v.safeParse(CachedChainSchema, await this.db.get('transcripts', session.id).catch(() => undefined));
    if (cached.success && cached.output.head === head) return cached.output.steps as ChainStep[];
    const steps = await chainTo(session, head, cached.success ? (cached.output.steps as ChainStep[]) : []);
    // A cache write that fails (quota) costs only speed next time.
    await this.db.put('transcripts', { head, steps }, session.id).catch(() => undefined);
    return steps;
  }

  /** The checkpoints from the root to `at` (on any branch), root first: the current branch's chain is reused. */
  async chainAt(session: Session, at: ObjectId): Promise<ChainStep[]> {
    return chainTo(session, at, await this.chain(session));
  }

  /** The whole checkpoint tree, the current branch read through the cache. */
  async tree(session: Session): Promise<SessionTree> {
    return layoutTree(session, await this.chain(session));
  }

  forget(id: string): Promise<void> {
    return this.db.delete('transcripts', id).catch(() => undefined);
  }
}
