/** Small builders for session tests and benchmarks: deterministic events, settings and component images. */
import type { LlmSettings, SessionEvent, Step } from '../../src/core/session/index.ts';

export const testLlm: LlmSettings = {
  model: 'tiny-llama-test',
  tokenizerId: 'spm-test',
  sampling: { temperature: 0, topP: 1, topK: 0, seed: 42, maxTokens: 256 },
};

export function userEvent(text: string, at = 1_700_000_000_000): SessionEvent {
  return { type: 'user', text, at };
}

export function generationEvent(text: string, at = 1_700_000_000_000, finish: 'stop' | 'length' | 'abort' | 'tool-call' = 'stop'): SessionEvent {
  return {
    type: 'generation',
    tokens: Array.from(text, (c) => c.charCodeAt(0)),
    text,
    engine: { id: 'test', kind: 'scripted', model: testLlm.model },
    timings: { promptMs: 1.5, generateMs: 12.25 },
    finish,
    at,
  };
}

/** A chat step with its own text, and optionally a component image. */
export function chatStep(n: number, components?: Step['components']): Step {
  return {
    events: [userEvent(`question number ${n}`, 1_700_000_000_000 + n), generationEvent(`answer number ${n}`, 1_700_000_000_001 + n)],
    ...(components ? { components } : {}),
    now: 1_700_000_000_002 + n,
  };
}

/** A deterministic pseudo-random image (xorshift), so tests and benchmarks need no Math.random. */
export function patternImage(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
