/**
 * The components a template's session runs — its agent and tools — fetched from the PWA's own static files
 * (components/<name>/: the service worker precaches their manifests and caches each file on first use, vite.config.ts) for the agent worker. A component's id is
 * the SHA-256 of its manifest, as on the relay, so a session moved to the cloud worker names the same builds; the
 * worker verifies every file against the manifest before it runs anything (core/runtime/load.ts).
 *
 * The other way round, a stored session says which template it belongs to through its agent: every checkpoint
 * records the agent's and tools' component ids (the runtime's `host/loop` state), and those ids are this build's
 * templates' ids or none of them.
 */
import { FerryError } from '../core/errors.ts';
import { LOOP_COMPONENT, readHostState } from '../core/runtime/checkpoint.ts';
import { parseManifest } from '../core/runtime/manifest.ts';
import type { ComponentFiles } from '../core/runtime/tool-worker.ts';
import { Session } from '../core/session/index.ts';
import { objectId } from '../core/store/hash.ts';
import type { Store } from '../core/store/index.ts';
import { TEMPLATE_IDS, type TemplateId } from './templates.ts';

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
    throw new FerryError('component/unavailable', `The agent's component file ${url} could not be fetched (${(cause as Error).message}). Open a session of this kind once while online: its files are then kept for offline use.`, { cause });
  }
  if (!res.ok) throw new FerryError('component/unavailable', `The agent's component file ${url} is missing (HTTP ${res.status}); this build of Ferry is incomplete. Reload the app, or rebuild it with \`npm run build\`.`);
  return new Uint8Array(await res.arrayBuffer());
}

const base = (name: string): URL => new URL(`/components/${name}/`, globalThis.location.origin);

/** Fetched once per page; a failed fetch is not remembered, so the next call tries again. */
function once<T>(cache: Map<string, Promise<T>>, name: string, load: () => Promise<T>): Promise<T> {
  let p = cache.get(name);
  if (!p) {
    cache.set(name, (p = load()));
    p.catch(() => cache.delete(name));
  }
  return p;
}

const manifests = new Map<string, Promise<{ id: string; bytes: Uint8Array }>>();

/** A component's manifest and id (the SHA-256 of the manifest's bytes). */
function fetchManifest(name: string): Promise<{ id: string; bytes: Uint8Array }> {
  return once(manifests, name, async () => {
    const bytes = await fetchBytes(new URL('manifest.json', base(name)).href);
    return { id: await objectId(bytes), bytes };
  });
}

const fetched = new Map<string, Promise<{ id: string; files: ComponentFiles }>>();

function fetchComponent(name: string): Promise<{ id: string; files: ComponentFiles }> {
  return once(fetched, name, async () => {
    const { id, bytes } = await fetchManifest(name);
    const manifest = parseManifest(bytes);
    const files: ComponentFiles = { 'manifest.json': bytes };
    // Asked for by content (the relay ignores the query): the service worker caches each file on first use, and a
    // cached copy can only be these bytes.
    await Promise.all([manifest.glue, ...manifest.coreModules].map(async (f) => void (files[f.file] = await fetchBytes(new URL(`${f.file}?sha256=${f.sha256}`, base(name)).href))));
    return { id, files };
  });
}

/** A template's agent and tools (each fetched once per page; the service worker serves them offline). */
export async function templateComponents(template: TemplateId): Promise<ComponentSet> {
  const { agent, tools } = TEMPLATE_PARTS[template];
  const set: ComponentSet = { files: {}, ids: {} };
  await Promise.all(
    [agent, ...tools].map(async (name) => {
      const c = await fetchComponent(name);
      set.files[c.id] = c.files;
      set.ids[name] = c.id;
    }),
  );
  return set;
}

/** What a stored session's agent is, as its head checkpoint records it. */
export type SessionAgent =
  | { template: TemplateId; agent: string }
  /** `agent` null: the session holds no agent state at all (written without an agent, e.g. by another tool). */
  | { template: null; agent: string | null };

/**
 * The template whose agent (and tools) the session's head checkpoint names, by component id. A session made by
 * another build of Ferry names other ids: it has no template here, since a checkpoint restores only into the build
 * that took it.
 */
export async function sessionAgent(store: Store, sessionId: string): Promise<SessionAgent> {
  const session = await Session.open(store, sessionId);
  const head = await session.head();
  if (!(await session.checkpoint(head)).components[LOOP_COMPONENT]) return { template: null, agent: null };
  const host = await readHostState(session, head);
  for (const template of TEMPLATE_IDS) {
    const { agent, tools } = TEMPLATE_PARTS[template];
    if ((await fetchManifest(agent)).id !== host.agent) continue;
    const ours = new Set(await Promise.all(tools.map(async (t) => (await fetchManifest(t)).id)));
    if (host.tools.every((t) => ours.has(t.component))) return { template, agent: host.agent };
  }
  return { template: null, agent: host.agent };
}

/** The typed refusal for a session whose agent this build does not have (it can be read, not continued). */
export function unknownAgentError(agent: string | null): FerryError {
  return agent === null
    ? new FerryError('app/no-agent', 'This session holds no agent state (it was written without an agent), so no agent can continue it here. You can read, fork, export and share it.')
    : new FerryError('app/unknown-agent', `This session's agent (component ${agent.slice(0, 12)}…) is not one this version of Ferry has, so it cannot continue here. You can read, fork, export and share it; continue it in the Ferry version that made it.`);
}
