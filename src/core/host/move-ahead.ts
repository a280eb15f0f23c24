/**
 * Moving a session while a reply streams, as live migration moves a running machine: copy first, then stop only for
 * what changed. The destination is warmed while the reply still streams where the session is — the local store's
 * session (its last checkpoint) goes up, and the node that will run it fetches it and prefills the streaming
 * generation's prompt into the session's KV slot. Only then is the generation cut: what is left to move is the cut
 * step alone (a checkpoint and the ids generated meanwhile), and the node's prefill of the continuation finds all
 * but those ids cached. A session that is not generating has nothing to stream and moves as it is.
 *
 * Warming is only a cache: if it fails or takes too long, the move goes on as if it had not been tried.
 *
 * Greedy replies only. Warming splits the prompt's prefill in two (the prompt, then the ids since), and llama.cpp's
 * CPU kernels round a batch differently by its size: the KV differs in its last bits from one prefilled whole. A
 * greedy continuation does not notice; a sampled one, which a move promises to go on as if never cut, can: the
 * browser's migration test (a sampled reply moved device → cloud → device) diverged in 2-4 of 6 runs warmed and in
 * none of 6 unwarmed. A sampled reply moves unwarmed.
 */
import type { SessionRunner } from './session-runner.ts';

/** The longest a move waits for its destination to warm; then it moves cold (the warming still helps if it lands). */
export const WARM_WAIT_MS = 10_000;

/** Warms `to` with the greedy generation streaming on `from`, when there is one and `to` can be warmed. Never rejects. */
export async function warmAhead(from: SessionRunner, to: SessionRunner): Promise<void> {
  if (!from.generating || !to.warm) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const streaming = await from.generating();
    if (!streaming || streaming.temperature > 0) return;
    await Promise.race([to.warm(streaming.prompt), new Promise<void>((resolve) => (timer = setTimeout(resolve, WARM_WAIT_MS)))]);
  } catch {
    // Only a cache was being warmed: the move itself says what goes wrong.
  } finally {
    clearTimeout(timer);
  }
}
