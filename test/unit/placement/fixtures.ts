import { isFerryError } from '../../../src/core/errors.ts';
import type { NodeProfile, PendingStep, PlacementPrefs } from '../../../src/core/placement/index.ts';

export const MODEL = 'llama-3.1-8b-q4';
export const NOW = 1_800_000_000_000;

export function node(id: string, over: Partial<NodeProfile> & { prefill?: number; decode?: number } = {}): NodeProfile {
  const { prefill = 100, decode = 10, ...rest } = over;
  return {
    id,
    kind: 'cloud',
    trust: 'third-party',
    models: { [MODEL]: { prefillTps: prefill, decodeTps: decode, measuredAt: NOW } },
    memoryBytes: 16 * 2 ** 30,
    link: { rttMs: 50, bandwidthBps: 10e6 },
    price: { promptPer1k: 0, outputPer1k: 0 },
    queueWaitMs: 0,
    kvState: true,
    ...rest,
  };
}

export const phone = (over: Partial<NodeProfile> & { prefill?: number; decode?: number } = {}) =>
  node('phone', { name: 'phone', kind: 'this-device', trust: 'own', prefill: 30, decode: 5, memoryBytes: 8 * 2 ** 30, link: { rttMs: 60, bandwidthBps: 2e6 }, ...over });
export const laptop = (over: Partial<NodeProfile> & { prefill?: number; decode?: number } = {}) =>
  node('laptop', { name: 'laptop', kind: 'my-device', trust: 'own', prefill: 180, decode: 17, link: { rttMs: 20, bandwidthBps: 20e6 }, ...over });
export const cloud = (over: Partial<NodeProfile> & { prefill?: number; decode?: number } = {}) =>
  node('cloud', { name: 'cloud-a100', prefill: 8000, decode: 150, price: { promptPer1k: 0.00018, outputPer1k: 0.00018 }, queueWaitMs: 200, ...over });

export function step(over: Partial<PendingStep> = {}): PendingStep {
  return { sessionId: 's1', model: MODEL, promptTokens: 2000, expectedOutputTokens: 500, kvBytesPerToken: 131072, ...over };
}

export const anyFastest: PlacementPrefs = { objective: 'fastest', privacy: 'any' };

/** The FerryError code `fn` throws, 'ok' when it returns. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return isFerryError(e) ? e.code : String(e);
  }
}
