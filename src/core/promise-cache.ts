/**
 * Work done once per key and shared by every caller: the promise made for `key` the first time, from `cache` after.
 * One that rejects is forgotten, so the next caller tries again rather than inheriting the failure.
 */
export function cachedPromise<K, V>(cache: { get(key: K): Promise<V> | undefined; set(key: K, value: Promise<V>): unknown; delete(key: K): unknown }, key: K, make: () => Promise<V>): Promise<V> {
  let value = cache.get(key);
  if (!value) {
    value = make();
    cache.set(key, value);
    value.catch(() => cache.delete(key));
  }
  return value;
}
