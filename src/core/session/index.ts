export { Session, type Branch, type HistoryEntry, type SessionInit, type Step } from './session.ts';
export { chunkDelta, chunkImage, readChunkList, readImage, readImages, type ChunkedImage, type ImageDelta, type PreviousImage } from './chunks.ts';
export {
  FORMAT_VERSION,
  MAX_SESSION_TITLE,
  PAGE_SIZE,
  SessionTitleSchema,
  checkPage,
  childrenOf,
  decodeObject,
  encodeObject,
  isBranchName,
  isComponentName,
  restoreObject,
  type Checkpoint,
  type ChunkList,
  type Counters,
  type EngineRef,
  type Head,
  type LlmSettings,
  type ObjectKind,
  type SessionEvent,
} from './schema.ts';
export { assertBranchName, assertComponentName, assertSessionId, branchRef, headRef, newSessionId, parseSessionRef, sessionPrefix } from './refs.ts';
export { bytesEqual, decodeMsgpack, encodeCanonical } from './canonical.ts';
export { chainTo, compareBranches, lastRollback, layoutTree, summarize, undoLastRollback, type ChainStep, type SessionTree, type TranscriptStep, type TreeNode } from './tree.ts';
