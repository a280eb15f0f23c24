export type { ObjectId, Ref, ReflogEntry, RefUpdate, Store, StoreBackend, StoredObject } from './types.ts';
export { ContentStore, refConflict } from './content-store.ts';
export { MemoryBackend, createMemoryStore } from './memory-store.ts';
export { assertObjectId, fromHex, isObjectId, objectId, toHex } from './hash.ts';
export { assertRefName, isRefName } from './refs.ts';
