/**
 * A real engine as it is, recording what tests look at: the stats of every generation it finishes (cachedTokens shows
 * what a slot held) and every verification (an evaluation without generating, as a prefill ahead makes) with the
 * tokens its slot already held. Disposing it leaves the engine to its owner.
 */
import type { Engine, GenerationStats, VerifyRequest } from '../../src/core/llm/engine.ts';

export function recording(engine: Engine): Engine & { stats: GenerationStats[]; verified: VerifyRequest[]; verifiedCached: number[] } {
  const stats: GenerationStats[] = [];
  const verified: VerifyRequest[] = [];
  const verifiedCached: number[] = [];
  return {
    info: engine.info,
    stats,
    verified,
    verifiedCached,
    tokenize: (text, options) => engine.tokenize(text, options),
    detokenize: (ids) => engine.detokenize(ids),
    async *generate(request) {
      for await (const event of engine.generate(request)) {
        if (event.type === 'done') stats.push(event.stats);
        yield event;
      }
    },
    async verify(request) {
      verified.push(request);
      const result = await engine.verify!(request);
      verifiedCached.push(result.cachedTokens);
      return result;
    },
    saveKv: (slot) => engine.saveKv!(slot),
    loadKv: (slot, state) => engine.loadKv!(slot, state),
    releaseSlot: (slot) => engine.releaseSlot!(slot),
    dispose: () => Promise.resolve(),
  };
}
