/**
 * The relay's component library (server/api/components.ts): the ids of the component builds it ships, and each
 * build's files as one image (runtime/builds.ts encodeBuild). A session moving to the relay's workers need not carry
 * a build listed here; a host that lacks one gets it here, and loads it only if it hashes to its id (host/relay-builds.ts).
 */
import * as v from 'valibot';
import { API_PREFIX } from './wire.ts';

export const componentPaths = {
  /** GET → ComponentList. */
  list: `${API_PREFIX}/components`,
  /** GET → the build's image (application/octet-stream); 404 relay/unknown-component when the relay ships none. */
  build: (id: string) => `${API_PREFIX}/components/${id}`,
} as const;

export const COMPONENT_LIMITS = {
  /** Builds a relay lists. */
  maxBuilds: 256,
  /** One build's image: a QuickJS component is ~1.6 MB; room for ones with larger core modules. */
  maxBuildBytes: 64 * 1024 * 1024,
} as const;

export const ComponentIdSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));

export const ComponentListSchema = v.object({ builds: v.pipe(v.array(ComponentIdSchema), v.maxLength(COMPONENT_LIMITS.maxBuilds)) });
export type ComponentList = v.InferOutput<typeof ComponentListSchema>;
