export { CONTAINER_VERSION, DEFAULT_LIMITS, MAGIC, decodeContainer, encodeContainer, type ContainerLimits, type PayloadKind } from './container.ts';
export { SESSION_KEY_BYTES, deriveSessionKeys, generateSessionKey, remoteId, type SessionKeys } from './keys.ts';
export { collectClosure, collectClosureWithKinds, reachableIds, refKind, type ClosureObject, type ClosureOptions, type ObjectReader } from './closure.ts';
export { KV_PREFIX, everyKv, isKvComponent, kvComponentName, kvFor, type KvSelection } from './kv.ts';
export { receiveObjects } from './receive.ts';
export { pullSession, storeTarget, syncSession, type PullOptions, type SyncSource, type SyncStats, type SyncTarget } from './sync.ts';
export { openObject, sealObject, sealedRelay } from './sealed.ts';
export { BUNDLE_VERSION, exportSession, importSession, type ExportOptions, type ImportOptions } from './file.ts';
export { verifySessions } from './verify.ts';
