export { CONTAINER_VERSION, DEFAULT_LIMITS, MAGIC, decodeContainer, encodeContainer, type ContainerLimits, type PayloadKind } from './container.ts';
export { SESSION_KEY_BYTES, deriveSessionKeys, generateSessionKey, remoteId, type SessionKeys } from './keys.ts';
export { collectClosure, reachableIds, refKind, type ObjectReader } from './closure.ts';
export { receiveObjects } from './receive.ts';
export { storeTarget, syncSession, type SyncSource, type SyncStats, type SyncTarget } from './sync.ts';
export { openObject, sealObject, sealedRelay } from './sealed.ts';
export { BUNDLE_VERSION, exportSession, importSession, type ExportOptions, type ImportOptions } from './file.ts';
export { verifySessions } from './verify.ts';
