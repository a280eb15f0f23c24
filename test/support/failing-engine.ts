/**
 * A real engine that fails the way web-llm's adapter reports a lost GPU device, after a given number of events: a
 * device loss cannot happen on the build machines (no GPU), so the fallback tests inject it into a real engine.
 */
import { FerryError } from '../../src/core/errors.ts';
import type { Engine, EngineInfo } from '../../src/core/llm/engine.ts';

export const gpuLost = (): FerryError =>
  new FerryError('llm/webgpu-lost', 'The GPU device was lost while running the model (driver reset or memory pressure). Switching to llama.cpp on the CPU.', { details: { fallback: 'wllama', engine: 'web-llm' } });

/**
 * `engine`, failing with `error` instead of producing its event number `after` (from 0; its `done` is the last),
 * and described as `info` says. Disposing it leaves `engine` loaded (tests share and dispose their engines).
 */
export function failing(engine: Engine, after: number, error: () => Error, info: Partial<EngineInfo> = {}): Engine {
  return {
    info: { ...engine.info, ...info },
    tokenize: (t, o) => engine.tokenize(t, o),
    detokenize: (ids) => engine.detokenize(ids),
    dispose: async () => undefined,
    async *generate(request) {
      let n = 0;
      for await (const event of engine.generate(request)) {
        if (n++ === after) throw error();
        yield event;
      }
    },
  };
}
