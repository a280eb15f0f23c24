/**
 * What this device's drafts are worth to a verifier, as measured: a running per-token acceptance for each pair of
 * draft and target model, from the tallies speculative generations report (llm SpeculativeTally). Placement's
 * speculative estimate takes it in place of its prior once a pair has one. Like DraftLength within a generation,
 * a round cut at a disagreement counts its agreements and one disagreement; older generations weigh less.
 */
import type { SpeculativeTally } from '../llm/engine.ts';

/** Weight a generation keeps when the next one is counted: the newest say most, one odd reply does not decide. */
const DECAY = 0.8;

/** The decayed counts of one pair, as stored. */
export interface AcceptanceCounts {
  readonly agree: number;
  readonly seen: number;
}

export class AcceptanceMeter {
  readonly #pairs = new Map<string, AcceptanceCounts>();

  /** A meter holding `counts` (as `toJSON` gave them); entries that are not counts are dropped. */
  static restore(counts: unknown): AcceptanceMeter {
    const meter = new AcceptanceMeter();
    if (typeof counts !== 'object' || counts === null) return meter;
    for (const [key, value] of Object.entries(counts)) {
      const { agree, seen } = (value ?? {}) as Partial<AcceptanceCounts>;
      if (typeof agree === 'number' && typeof seen === 'number' && Number.isFinite(seen) && seen > 0 && agree >= 0 && agree <= seen) meter.#pairs.set(key, { agree, seen });
    }
    return meter;
  }

  /** Counts one speculative generation's drafts. */
  record(tally: SpeculativeTally): void {
    if (tally.accepted + tally.rejected <= 0) return; // nothing drafted: nothing learned
    const key = pairKey(tally.draftModel, tally.targetModel);
    const old = this.#pairs.get(key) ?? { agree: 0, seen: 0 };
    this.#pairs.set(key, { agree: old.agree * DECAY + tally.accepted, seen: old.seen * DECAY + tally.accepted + tally.rejected });
  }

  /** Per-token acceptance of `draftModel`'s drafts by `targetModel`, 0..1; null before any was measured. */
  acceptance(draftModel: string, targetModel: string): number | null {
    const counts = this.#pairs.get(pairKey(draftModel, targetModel));
    return counts ? counts.agree / counts.seen : null;
  }

  toJSON(): Record<string, AcceptanceCounts> {
    return Object.fromEntries(this.#pairs);
  }
}

function pairKey(draftModel: string, targetModel: string): string {
  return JSON.stringify([draftModel, targetModel]);
}
