/**
 * The prefix a session's next step shares with what a node's KV cache holds, keyed the way workers list theirs
 * (placement/fleet.ts relayProfiles): the newest generation up to a checkpoint recorded its prompt and output as
 * block keys (LoopState.held); keyed with the session key of the run that left them, a node that ran the session
 * from there lists the same values. A fork and a rollback's branch are branches of the same session, so its own key
 * serves them; their next prompt starts with that context.
 */
import { PREFIX_BLOCK, keyPrefixes } from '../llm/prefix-keys.ts';
import { Session } from '../session/index.ts';
import { deriveSessionKeys } from '../snapshot/keys.ts';
import type { ObjectId, Store } from '../store/index.ts';
import { readHostState } from './checkpoint.ts';

/** A step's prefixKeys and the tokenizer whose ids they hash: they mean something only to a node with the same. */
export interface StepPrefix {
  tokenizer: string;
  keys: string[];
}

/**
 * The keyed prefix of the next step from checkpoint `at` (default the head) of `session`, under `sessionKey`; undefined
 * when no generation up to there recorded one (a new session, an engine that cannot name its tokenizer). Computed
 * once per placement decision.
 */
export async function nextStepPrefix(session: Session, sessionKey: Uint8Array, at?: ObjectId): Promise<StepPrefix | undefined> {
  const { loop } = await readHostState(session, at ?? (await session.head()));
  if (!loop.held || loop.held.keys.length === 0) return undefined;
  return { tokenizer: loop.held.tokenizerId, keys: await keyPrefixes((await deriveSessionKeys(sessionKey)).prefixes, loop.held.keys) };
}

/**
 * The prompt a session's forked children share with it, as relayChildren's `prefix` takes it: what its newest
 * generation left in a KV cache, keyed with `sessionKey`, and its length (its whole blocks). For a parent whose
 * engine's slots say nothing of a node's (the device's agent worker); undefined where nothing was recorded.
 */
export async function parentPrefix(store: Store, parent: string, sessionKey: Uint8Array): Promise<{ keys: string[]; promptTokens: number } | undefined> {
  const prefix = await nextStepPrefix(await Session.open(store, parent), sessionKey);
  return prefix ? { keys: prefix.keys, promptTokens: prefix.keys.length * PREFIX_BLOCK } : undefined;
}
