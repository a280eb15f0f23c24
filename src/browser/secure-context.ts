/**
 * Service workers, the origin-private file system and WebCrypto exist only in a secure context: on a page opened
 * over plain HTTP from another device they are missing because of the address, not the browser.
 */

/** What to say when `feature` is missing because the page is not a secure context; undefined when it is one. */
export function insecurePageReason(feature: string): string | undefined {
  if (globalThis.isSecureContext !== false) return undefined;
  return `This page was opened over plain HTTP at ${globalThis.location?.host ?? 'this address'}, which is not a secure context, so the browser gives it no ${feature}. Open the relay's https:// address instead: the notice at the top of the page says how.`;
}
