/**
 * What a session here starts with that may change while it is open: Settings' engine limits, and where a step's
 * forked children run — across this device's space (its other devices offering themselves, the relay's workers that
 * charge nothing, and under "Any node" those that charge, within the budget) unless the privacy keeps everything here.
 */
import type { ChildrenScope, RunPlacement } from '../core/protocol/index.ts';
import type { AutoPlacementContext } from './auto-placement.ts';
import type { StartSettings } from './device-worker.ts';
import type { EngineLimits } from './engine-choice.ts';

export type AutoPlacementSource = (() => Promise<AutoPlacementContext | undefined>) | undefined;

export async function startSettings(limits: EngineLimits, autoPlacement: AutoPlacementSource): Promise<StartSettings> {
  const context = await autoPlacement?.();
  const parallel = context?.space && context.prefs.privacy !== 'this-device' && /^https?:\/\//i.test(context.relay)
    ? {
        relayUrl: context.relay,
        space: context.space,
        cloud: context.prefs.privacy === 'any',
        ...(context.self ? { host: context.self } : {}),
        ...(context.prefs.budgetUsd !== undefined ? { maxCostUsd: context.prefs.budgetUsd } : {}),
      }
    : undefined;
  return { limits, parallel };
}

/** `where`, with the scope its run's forked children may use: where they would go from here. */
export async function withChildren(where: RunPlacement | undefined, limits: EngineLimits, autoPlacement: AutoPlacementSource): Promise<RunPlacement | undefined> {
  const { parallel } = await startSettings(limits, autoPlacement);
  if (!parallel) return where;
  const children: ChildrenScope = { space: parallel.space, cloud: parallel.cloud ?? false, ...(parallel.maxCostUsd !== undefined ? { maxCostUsd: parallel.maxCostUsd } : {}) };
  return { ...where, children };
}
