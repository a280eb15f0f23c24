/**
 * How long the next reply will be, for the policy's decode estimates. The reply limit is only an upper bound: a
 * dev-guidance session that answers in 150 tokens under a 512-token limit would have every slow node's decode time
 * overstated 3×. So the estimate is the mean of the session's recent replies, never above the limit, and the limit
 * itself before there is a reply to go by. The product (agent host, "where it runs") and the placement simulator
 * (bench/placement.ts) both estimate with these, so what the bench measures is what the product decides with.
 */
import { FerryError } from '../errors.ts';

/** Replies the estimate looks back over: recent enough to follow a session from reading into drafting. */
export const RECENT_REPLIES = 8;

function tokens(x: number, what: string): number {
  if (!Number.isFinite(x) || x < 0) throw new FerryError('placement/bad-tokens', `${what} must be a non-negative number of tokens, got ${x}.`);
  return Math.floor(x);
}

/** Expected tokens of the next reply: the mean of the last `RECENT_REPLIES` of `recent` (oldest first), at most `limit`. */
export function expectedReplyTokens(recent: readonly number[], limit: number): number {
  const cap = tokens(limit, 'The reply limit');
  const last = recent.slice(-RECENT_REPLIES).map((n) => tokens(n, 'A reply length'));
  if (last.length === 0) return cap;
  return Math.min(cap, Math.max(1, Math.round(last.reduce((a, n) => a + n, 0) / last.length)));
}

/**
 * Tokens still to come in a reply that has `generated` so far and was expected at `expected`: what is left of the
 * expectation; once the reply has run past it, as many again as it has so far (a reply that runs long tends to run
 * on, and taking it as all but over would keep a slowed node from ever handing it on); never past the limit.
 */
export function remainingReplyTokens(expected: number, generated: number, limit: number): number {
  const done = tokens(generated, 'Generated tokens');
  const left = tokens(limit, 'The reply limit') - done;
  if (left <= 0) return 0;
  const exp = tokens(expected, 'The expected reply length');
  return Math.min(left, exp > done ? exp - done : Math.max(done, 1));
}
