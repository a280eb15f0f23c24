/**
 * The third way to run a step (DESIGN §9): speculative — the session stays on this device, whose engine drafts k
 * tokens a round; a verifying node checks each round's draft in one forward pass and answers with its own greedy
 * pick (ids only on the wire). The tokens are the verifier's model's greedy tokens, so the step is estimated for the
 * step's model like any other run there; what it costs in time is rounds, not decoded tokens:
 *
 *   round(k)  = k / draftTps + round trip + verify(k),   verify(k) = one decode step + k tokens at the prefill rate
 *   tokens(k) = (1 − a^(k+1)) / (1 − a)                  (accepted draft ids, plus the verifier's own next one)
 *
 * with `a` the per-token acceptance, and k the draft length with the most tokens per ms (as DraftLength picks it
 * at run time). Sampled steps cannot run this way: speculative decoding here is greedy only.
 */
import type { NodeProfile } from './profile.ts';

/** What a step says about running speculatively (PendingStep.speculative). */
export interface SpeculativeStep {
  /** The model this device drafts with; default the step's own model. */
  readonly draftModel?: string;
  /** Per-token acceptance of its drafts by the verifier's model, 0..1: as this device measured it (AcceptanceMeter) or a prior. */
  readonly acceptance: number;
}

/** How a speculative estimate was made, for the reason and for "where it runs". */
export interface SpeculativePlan {
  /** The node that drafts (this device). */
  readonly draftNodeId: string;
  /** Tokens drafted per round. */
  readonly draftTokens: number;
  readonly acceptance: number;
  /** Tokens decided per round in expectation. */
  readonly tokensPerRound: number;
  /** One round: drafting, the round trip, the verification pass, ms. */
  readonly roundMs: number;
  /** This device's draft rate, tok/s. */
  readonly draftTps: number;
}

/** Draft lengths considered (DraftLength's default bounds). */
const MIN_K = 1;
const MAX_K = 16;
/** A draft that always agrees: tokens(k) = k + 1. */
const CERTAIN = 0.999;

/** Tokens one round decides in expectation with a draft of `k` at acceptance `a`. */
export function tokensPerRound(k: number, a: number): number {
  const p = Math.min(Math.max(a, 0), CERTAIN);
  return (1 - p ** (k + 1)) / (1 - p);
}

/**
 * The best plan for `drafter` drafting and `verifier` verifying `model`'s tokens, or a reason it cannot be made.
 * `draftModel` is the drafter's model.
 */
export function speculativePlan(drafter: NodeProfile, verifier: NodeProfile, model: string, spec: SpeculativeStep): SpeculativePlan | { readonly excluded: string } {
  const draftModel = spec.draftModel ?? model;
  const draft = drafter.models[draftModel];
  if (!draft) return { excluded: 'this device has no measured speed for its draft model' };
  const verify = verifier.models[model];
  if (!verify) return { excluded: `${verifier.name ?? verifier.id} has no measured speed for the step's model` };
  const stepMs = 1000 / verify.decodeTps;
  let best: SpeculativePlan | undefined;
  for (let k = MIN_K; k <= MAX_K; k++) {
    const roundMs = (k * 1000) / draft.decodeTps + verifier.link.rttMs + stepMs + (k * 1000) / verify.prefillTps;
    const plan = { draftNodeId: drafter.id, draftTokens: k, acceptance: spec.acceptance, tokensPerRound: tokensPerRound(k, spec.acceptance), roundMs, draftTps: draft.decodeTps };
    if (!best || plan.tokensPerRound / plan.roundMs > best.tokensPerRound / best.roundMs) best = plan;
  }
  return best!;
}

/** Tokens the verifier reads for `outputTokens` decided by `plan`: every drafted id, round by round. */
export function verifiedDraftTokens(plan: SpeculativePlan, outputTokens: number): number {
  return Math.ceil(outputTokens / plan.tokensPerRound) * plan.draftTokens;
}
