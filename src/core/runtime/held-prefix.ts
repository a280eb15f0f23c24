/**
 * The prefix a session's next step shares with what a node's KV cache holds, keyed the way workers list theirs
 * (placement/fleet.ts relayProfiles): the newest generation up to a checkpoint recorded its prompt and output as
 * block keys (LoopState.held); keyed with the session key of the run that left them, a node that ran the session
 * from there lists the same values. A fork and a rollback's branch are branches of the same session, so its own key
 * serves them; their next prompt starts with that context.
 */
import { keyPrefixes } from '../llm/prefix-keys.ts';
import type { Session } from '../session/index.ts';
import { deriveSessionKeys } from '../snapshot/keys.ts';
import type { ObjectId } from '../store/index.ts';
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
