/**
 * A node's profile (DESIGN §7): what it runs and how fast, measured by a short real generation on its own engine
 * when it starts (a cloud worker, a browser offering itself as a node) — a prompt of PROFILE_PROMPT_TOKENS then PROFILE_DECODE_TOKENS greedy tokens, in a slot of its
 * own that is released afterwards. A few tens of milliseconds on the tiny demo model.
 */
import type { Engine, GenerationStats } from '../llm/engine.ts';
import type { WorkerProfile } from '../protocol/index.ts';

const PROFILE_PROMPT_TOKENS = 128;
const PROFILE_DECODE_TOKENS = 32;
const SLOT = 'ferry-profile';

export async function measureProfile(engine: Engine, options: { name: string; slots: number }): Promise<WorkerProfile> {
  const length = Math.min(PROFILE_PROMPT_TOKENS, Math.floor(engine.info.contextSize / 2));
  // An OpenAI-compatible upstream cannot tokenize: it is measured on the same words as text.
  const word = await engine.tokenize(' the').catch(() => undefined);
  const prompt = word ? { tokens: Array.from({ length }, (_, i) => word[i % word.length]!) } : { text: ' the'.repeat(length) };
  let stats: GenerationStats | undefined;
  for await (const event of engine.generate({ prompt, maxTokens: PROFILE_DECODE_TOKENS, temperature: 0, slot: SLOT })) {
    if (event.type === 'done') stats = event.stats;
  }
  await engine.releaseSlot?.(SLOT);
  const round = (n: number | undefined): number => (n !== undefined && Number.isFinite(n) ? Math.round(n) : 0);
  return {
    name: options.name,
    model: engine.info.model,
    tokenizer: engine.info.tokenizerId,
    engine: engine.info.id,
    device: engine.info.device ?? 'unknown',
    contextSize: engine.info.contextSize,
    slots: options.slots,
    prefillTps: round(stats?.prefillTps),
    decodeTps: round(stats?.decodeTps),
  };
}
