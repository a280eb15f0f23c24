/**
 * The prefill of a moved generation, started before the runtime is open. A session that arrives cut mid-reply
 * (LoopState.cut) continues from the cut's prompt plus the ids generated so far, and that prompt is known from the
 * head checkpoint alone: the host evaluates it into the session's KV slot while the components instantiate, and the
 * continuation then finds it cached (the engine keeps the longest common prefix of a slot) — the same ids, evaluated
 * earlier. Only a cache is warmed: whatever goes wrong here, the continuation prefills what it lacks as before.
 */
import type { Engine } from '../llm/engine.ts';
import { kvFormatOf } from '../llm/kv-state.ts';
import { preparePrompt } from '../llm/prompt.ts';
import type { Session } from '../session/index.ts';
import type { ObjectId } from '../store/index.ts';
import { readHostState } from './checkpoint.ts';
import { kvComponentName, type KvPolicy } from './kv-handoff.ts';

/**
 * Evaluates the prompt of the cut generation at checkpoint `at` into `slot`, where the run that resumes it will
 * continue it; resolves with the tokens evaluated (0 when there is nothing to do) and never rejects. Nothing is
 * done where the checkpoint has no cut, the cut needs no more tokens, the engine cannot evaluate without generating
 * (no `verify`), or a saved KV state of this engine will be loaded into the slot instead (kv-handoff.ts restoreKv).
 */
export async function prefillCut(engine: Engine, session: Session, at: ObjectId, slot: string, kv: KvPolicy, signal?: AbortSignal): Promise<number> {
  try {
    if (!engine.verify) return 0;
    const [{ loop }, checkpoint] = await Promise.all([readHostState(session, at), session.checkpoint(at)]);
    const cut = loop.cut;
    if (!cut || cut.tokens.length >= cut.maxTokens) return 0;
    if (kv.load !== false && kvComponentName(kvFormatOf(engine.info)) in checkpoint.components) return 0;
    const prompt = await preparePrompt(engine, cut.prompt);
    // The ids so far, where this engine reuses them as they are (loop.ts #sofar); a cut call is written again from its start.
    const sofar = cut.tokenizerId !== '' && cut.tokenizerId === engine.info.tokenizerId ? cut.tokens.slice(0, cut.openCall?.tokens ?? cut.tokens.length) : [];
    return await evaluate(engine, [...prompt, ...sofar], slot, signal);
  } catch {
    return 0;
  }
}

/**
 * Evaluates `ids` into `slot` ahead of a move (host/move-ahead.ts: the prompt streaming on the device, then the ids
 * it generated until the cut), so the continuation finds them cached. Like prefillCut, only a cache is warmed:
 * resolves with the tokens evaluated (0 when nothing was) and never rejects.
 */
export async function prefillIds(engine: Engine, ids: number[], slot: string, signal?: AbortSignal): Promise<number> {
  try {
    return engine.verify && ids.length > 0 ? await evaluate(engine, ids, slot, signal) : 0;
  } catch {
    return 0;
  }
}

async function evaluate(engine: Engine, context: number[], slot: string, signal: AbortSignal | undefined): Promise<number> {
  if (context.length >= engine.info.contextSize) return 0;
  await engine.verify!({ context, draft: [], slot, ...(signal ? { signal } : {}) });
  return context.length;
}
