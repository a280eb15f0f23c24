/**
 * This site's share of the browser's storage: how much it uses of what the browser allows, whether the browser keeps
 * it (persistent storage: not cleared under storage pressure), and asking for that once there is something to keep.
 */

export interface StorageUse {
  usedBytes: number;
  quotaBytes: number;
  /** The browser will not clear this site's data to make room. */
  persisted: boolean;
}

/** Above this share of the quota, saving more warns first: a write refused for quota loses the step. */
export const NEARLY_FULL = 0.9;

/** What the browser says, or null when it has no Storage API (an insecure page, an old browser). */
export async function storageUse(): Promise<StorageUse | null> {
  const storage = globalThis.navigator?.storage;
  if (!storage?.estimate) return null;
  const [estimate, persisted] = await Promise.all([storage.estimate(), storage.persisted?.().catch(() => false) ?? Promise.resolve(false)]);
  if (estimate.quota === undefined || estimate.usage === undefined) return null;
  return { usedBytes: estimate.usage, quotaBytes: estimate.quota, persisted };
}

/** Asks the browser to keep this site's data; true when it will. Browsers decide without a prompt, or ask once. */
export async function askToPersist(): Promise<boolean> {
  const storage = globalThis.navigator?.storage;
  if (!storage?.persist) return false;
  if (await storage.persisted?.().catch(() => false)) return true;
  return storage.persist().catch(() => false);
}

export function nearlyFull(use: StorageUse): boolean {
  return use.usedBytes > use.quotaBytes * NEARLY_FULL;
}
