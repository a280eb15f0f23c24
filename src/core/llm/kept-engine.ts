/**
 * A handle on an engine that outlives its users: the agent worker keeps a loaded model across sessions (loading it
 * again costs seconds on a large file), while the runtime disposes its engine on every start. The handle passes every
 * call through — the optional ones only where the engine has them — and its dispose() leaves the engine loaded.
 */
import type { Engine, KvState, VerifyRequest } from './engine.ts';

export function keptHandle(engine: Engine): Engine {
  return {
    // A getter: after a fallback the engine's info is the fallback's.
    get info() {
      return engine.info;
    },
    tokenize: (text, options) => engine.tokenize(text, options),
    detokenize: (ids) => engine.detokenize(ids),
    generate: (request) => engine.generate(request),
    ...(engine.verify ? { verify: (request: VerifyRequest) => engine.verify!(request) } : {}),
    ...(engine.saveKv ? { saveKv: (slot: string) => engine.saveKv!(slot) } : {}),
    ...(engine.loadKv ? { loadKv: (slot: string, state: KvState) => engine.loadKv!(slot, state) } : {}),
    ...(engine.releaseSlot ? { releaseSlot: (slot: string) => engine.releaseSlot!(slot) } : {}),
    ...(engine.slotTokens ? { slotTokens: (slot: string) => engine.slotTokens!(slot) } : {}),
    dispose: async () => undefined,
  };
}
