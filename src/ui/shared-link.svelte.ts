/**
 * A share link opened in this app (`https://<relay>/s/<snapshot>#k=<key>`): the key is taken out of the address bar
 * and its history entry at once, the session — every branch, its tool state — is copied from the relay into this
 * device's store and listed, and the session opens, ready to continue here (or to move on). A link pasted elsewhere
 * in the app (Settings → Join) is opened the same way. What can go wrong says what happened and what to do.
 */
import { FerryError, isFerryError } from '../core/errors.ts';
import type { ShareLink } from '../core/protocol/index.ts';
import { ui } from './app.svelte.ts';
import { describeError, type UiError } from './errors.ts';
import { href, router } from './router.svelte.ts';

/** The route that shows a link being opened. */
export const OPEN_ROUTE = '#/open';

class SharedLink {
  /** The link this page was opened with (or was given), until it has been opened. */
  #link = $state.raw<ShareLink | undefined>(undefined);
  phase = $state<'idle' | 'opening' | 'failed'>('idle');
  error = $state.raw<UiError | null>(null);

  /** At start-up: a share link in the address bar is taken (the key leaves the address bar) and opened once the app is ready. */
  async takeFromLocation(): Promise<void> {
    if (!/^\/s\/[^/]+\/?$/.test(location.pathname)) return;
    try {
      const { takeShareLinkFromLocation } = await import('../browser/relay-client.ts');
      this.#link = takeShareLinkFromLocation();
    } catch (err) {
      this.#fail(err);
    }
    // The app lives at the root; the link's path would read as a page that does not exist.
    history.replaceState(null, '', `/${OPEN_ROUTE}`);
  }

  /** A link a person pasted (Settings): opened as if it had been followed. */
  async use(text: string): Promise<void> {
    try {
      const { parseShareLink } = await import('../core/protocol/index.ts');
      this.#link = parseShareLink(text.trim());
      this.error = null;
    } catch (err) {
      this.#fail(err);
    }
    router.go(OPEN_ROUTE);
  }

  /** Opens the link taken or given, once: copies the session here, lists it, and goes to it. */
  async open(): Promise<void> {
    const link = this.#link;
    if (!link || this.phase === 'opening') return;
    this.phase = 'opening';
    this.error = null;
    try {
      const { importShareLink } = await import('../browser/relay-client.ts');
      const { sessionId, manifest } = await importShareLink(link, ui.app.store).catch((err: unknown) => {
        throw explain(err);
      });
      this.#link = undefined;
      // The title it was shared under, else (an older relay's share) its first message.
      const meta = await ui.app.sessions.adopt(sessionId, 'Shared session', manifest.title);
      await ui.refresh();
      this.phase = 'idle';
      ui.notify(`Opened the shared session "${meta.title}". It runs on this device now.`);
      router.go(href.session(sessionId));
    } catch (err) {
      // Only a relay out of reach is worth another try; a link that was cut or whose snapshot is gone stays so.
      if (!isFerryError(err, 'relay/unreachable')) this.#link = undefined;
      this.#fail(err);
    }
  }

  get pending(): boolean {
    return this.#link !== undefined;
  }

  #fail(err: unknown): void {
    this.phase = 'failed';
    this.error = describeError(err);
  }
}

/** The relay's and the crypto's refusals, in the words of someone who followed a link. */
function explain(err: unknown): FerryError {
  if (isFerryError(err, 'relay/unknown-snapshot')) {
    return new FerryError('relay/unknown-snapshot', 'This shared session is not on the relay any more (it was removed, or the link was cut short). Ask whoever shared it for a new link.', { cause: err });
  }
  if (isFerryError(err, 'snapshot/')) {
    return new FerryError('snapshot/bad-key', "This link's key does not open the shared session: the part after # was changed or cut. Copy the whole link again.", { cause: err });
  }
  if (isFerryError(err, 'relay/unreachable') || !isFerryError(err)) {
    return new FerryError('relay/unreachable', `The relay this link points at could not be reached (${err instanceof Error ? err.message : String(err)}). Check the connection and open the link again.`, { cause: err });
  }
  return err;
}

export const sharedLink = new SharedLink();
