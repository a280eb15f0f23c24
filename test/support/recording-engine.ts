/**
 * A real engine as it is, recording what tests look at: the stats of every generation it finishes (cachedTokens shows
 * what a slot held) and every verification (an evaluation without generating, as a prefill ahead makes). Disposing it
 * leaves the engine to its owner.
 */
import type { Engine, GenerationStats, VerifyRequest } from '../../src/core/llm/engine.ts';

export function recording(engine: Engine): Engine & { stats: GenerationStats[]; verified: VerifyRequest[] } {
  const stats: GenerationStats[] = [];
  const verified: VerifyRequest[] = [];
  return {
    info: engine.info,
    stats,
    verified,
    tokenize: (text, options) => engine.tokenize(text, options),
    detokenize: (ids) => engine.detokenize(ids),
    async *generate(request) {
      for await (const event of engine.generate(request)) {
        if (event.type === 'done') stats.push(event.stats);
        yield event;
      }
    },
    verify: (request) => (verified.push(request), engine.verify!(request)),
    saveKv: (slot) => engine.saveKv!(slot),
    loadKv: (slot, state) => engine.loadKv!(slot, state),
    releaseSlot: (slot) => engine.releaseSlot!(slot),
    dispose: () => Promise.resolve(),
  };
}
