/** Placement (DESIGN.md §7): node profiles and the policy that decides where each step of a session runs, and why. */
export {
  DEFAULT_PROFILE_MAX_AGE_MS,
  ModelSpeedSchema,
  NodeProfileSchema,
  isProfileStale,
  nodeName,
  restoreNodeProfile,
  staleNodes,
  tokensCostUsd,
  withMeasuredSpeed,
  type ModelSpeed,
  type NodeKind,
  type NodeProfile,
  type NodeTrust,
  type Price,
} from './profile.ts';
export {
  DEFAULT_PREFS,
  PendingStepSchema,
  PlacementPrefsSchema,
  decide,
  objectiveScore,
  privacyAllows,
  redecideMidGeneration,
  shouldMigrate,
  type Decision,
  type Estimate,
  type MigrateCheck,
  type MigrateCheckOptions,
  type Objective,
  type PendingStep,
  type PlacementPrefs,
  type Privacy,
  type Resume,
  type RunMode,
} from './policy.ts';
export { speculativePlan, tokensPerRound, type SpeculativePlan, type SpeculativeStep } from './speculative.ts';
export { AcceptanceMeter, type AcceptanceCounts } from './acceptance.ts';
export { cloudPlacement, heldPrefixKeys, relayProfiles, thisDeviceProfile, type LinkProbe, type ThisDevice } from './fleet.ts';
export { GenerationWatch, type GenerationWatchOptions } from './monitor.ts';
export { RECENT_REPLIES, expectedReplyTokens, remainingReplyTokens } from './reply-length.ts';
