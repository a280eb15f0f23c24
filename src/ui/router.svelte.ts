/**
 * Hash routes: #/ (sessions), #/s/<id> (chat), #/s/<id>/tree (checkpoints), #/s/<id>/panel (its template's panel;
 * #/s/<id>/panel/<checkpoint>: as it was at that checkpoint),
 * #/models, #/settings, #/open (a share link being opened).
 */
export type SessionTab = 'chat' | 'tree' | 'panel';

export type Route =
  | { name: 'list' }
  /** `at`: a checkpoint the panel shows the session as at (absent: the head). */
  | { name: 'session'; id: string; tab: SessionTab; at?: string }
  | { name: 'settings' }
  | { name: 'models' }
  /** A share link being opened (shared-link.svelte.ts). */
  | { name: 'open' }
  | { name: 'not-found'; hash: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/' || path === '') return { name: 'list' };
  if (path === '/settings') return { name: 'settings' };
  if (path === '/models') return { name: 'models' };
  if (path === '/open') return { name: 'open' };
  const m = /^\/s\/([0-9a-f]{32})(?:\/(tree|panel))?$/.exec(path);
  if (m) return { name: 'session', id: m[1]!, tab: (m[2] as 'tree' | 'panel' | undefined) ?? 'chat' };
  const at = /^\/s\/([0-9a-f]{32})\/panel\/([0-9a-f]{64})$/.exec(path);
  if (at) return { name: 'session', id: at[1]!, tab: 'panel', at: at[2]! };
  return { name: 'not-found', hash: path };
}

export const href = {
  list: '#/',
  settings: '#/settings',
  models: '#/models',
  session: (id: string) => `#/s/${id}`,
  tree: (id: string) => `#/s/${id}/tree`,
  panel: (id: string, at?: string) => `#/s/${id}/panel${at ? `/${at}` : ''}`,
};

class Router {
  route = $state<Route>(parseRoute(typeof location === 'undefined' ? '' : location.hash));

  start(): void {
    // The address may have changed since this module loaded (a share link's key is taken out of it first).
    this.route = parseRoute(location.hash);
    addEventListener('hashchange', () => {
      this.route = parseRoute(location.hash);
    });
  }

  go(to: string): void {
    if (location.hash === to) this.route = parseRoute(to);
    else location.hash = to;
  }
}

export const router = new Router();
