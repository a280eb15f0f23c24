/**
 * This device's measured acceptance of its drafts (core/placement AcceptanceMeter), per draft and target model, kept
 * in this browser's storage beside its other device settings: every speculative generation here adds to it, and
 * placement estimates running speculatively with it (next-step.ts) instead of its prior once there is one.
 */
import { AcceptanceMeter } from '../core/placement/index.ts';
import type { SpeculativeTally } from '../core/llm/index.ts';

const KEY = 'ferry-speculative-acceptance';

let meter: AcceptanceMeter | undefined;

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage ?? undefined;
  } catch {
    return undefined; // storage disabled for this origin: the measurement lives as long as the page
  }
}

function loaded(): AcceptanceMeter {
  if (meter) return meter;
  let saved: unknown;
  try {
    saved = JSON.parse(storage()?.getItem(KEY) ?? 'null');
  } catch {
    saved = null; // unreadable: measured again from the next speculative generation
  }
  meter = AcceptanceMeter.restore(saved);
  return meter;
}

/** Counts a speculative generation that ran here. */
export function recordAcceptance(tally: SpeculativeTally): void {
  const m = loaded();
  m.record(tally);
  try {
    storage()?.setItem(KEY, JSON.stringify(m));
  } catch {
    // Storage full or refused: the page still decides with what it measured.
  }
}

/** The measured per-token acceptance of `draftModel`'s drafts by `targetModel`; null before any generation here measured it. */
export function measuredAcceptance(draftModel: string, targetModel: string): number | null {
  return loaded().acceptance(draftModel, targetModel);
}
