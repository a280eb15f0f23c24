/**
 * The components a template's session runs — its agent and tools — fetched from the PWA's own static files
 * (components/<name>/, precached by the service worker: vite.config.ts) for the agent worker. A component's id is
 * the SHA-256 of its manifest, as on the relay, so a session moved to the cloud worker names the same builds; the
 * worker verifies every file against the manifest before it runs anything (core/runtime/load.ts).
 */
import { FerryError } from '../core/errors.ts';
import { parseManifest } from '../core/runtime/manifest.ts';
import type { ComponentFiles } from '../core/runtime/tool-worker.ts';
import { objectId } from '../core/store/hash.ts';
import type { TemplateId } from './app-state.ts';

/** Each template's agent component and the tools it is given (components/README.md says which tools each uses). */
export const TEMPLATE_PARTS: Record<TemplateId, { agent: string; tools: readonly string[] }> = {
  assistant: { agent: 'assistant', tools: ['notes'] },
  'dev-guide': { agent: 'dev-guide', tools: ['workspace', 'js'] },
  podcast: { agent: 'podcast', tools: ['docs'] },
  survey: { agent: 'survey', tools: ['docs'] },
};

export interface ComponentSet {
  /** Component id → its files. */
  files: Record<string, ComponentFiles>;
  /** Component name → id. */
  ids: Record<string, string>;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (cause) {
    throw new FerryError('component/unavailable', `The agent's component file ${url} could not be fetched (${(cause as Error).message}). Reload the app while online once, so it is stored for offline use.`, { cause });
  }
  if (!res.ok) throw new FerryError('component/unavailable', `The agent's component file ${url} is missing (HTTP ${res.status}); this build of Ferry is incomplete. Reload the app, or rebuild it with \`npm run build\`.`);
  return new Uint8Array(await res.arrayBuffer());
}

async function fetchComponent(name: string): Promise<{ id: string; files: ComponentFiles }> {
  const base = new URL(`/components/${name}/`, globalThis.location.origin);
  const manifestBytes = await fetchBytes(new URL('manifest.json', base).href);
  const manifest = parseManifest(manifestBytes);
  const files: ComponentFiles = { 'manifest.json': manifestBytes };
  await Promise.all([manifest.glue, ...manifest.coreModules].map(async (f) => void (files[f.file] = await fetchBytes(new URL(f.file, base).href))));
  return { id: await objectId(manifestBytes), files };
}

const fetched = new Map<string, Promise<{ id: string; files: ComponentFiles }>>();

/** A template's agent and tools (each fetched once per page; the service worker serves them offline). */
export async function templateComponents(template: TemplateId): Promise<ComponentSet> {
  const { agent, tools } = TEMPLATE_PARTS[template];
  const set: ComponentSet = { files: {}, ids: {} };
  await Promise.all(
    [agent, ...tools].map(async (name) => {
      let p = fetched.get(name);
      if (!p) {
        fetched.set(name, (p = fetchComponent(name)));
        // A failed fetch is not remembered: the next call tries again.
        p.catch(() => fetched.delete(name));
      }
      const c = await p;
      set.files[c.id] = c.files;
      set.ids[name] = c.id;
    }),
  );
  return set;
}
