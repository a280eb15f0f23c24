/**
 * Component builds from the relay's library, for a host that lacks one. A session moved to the relay's workers
 * leaves out the builds the relay ships (publishSession `omitRelayBuilds`), so a worker attached from elsewhere,
 * with another library, gets such a build here. The relay is not trusted with it: the image loads only if its
 * manifest hashes to the id asked for and every file to the manifest (runtime/builds.ts loadBuildImage).
 */
import type { RelayHttp } from '../protocol/index.ts';
import { loadBuildImage } from '../runtime/builds.ts';
import type { LoadedComponent, LoadOptions } from '../runtime/index.ts';

export type LoadBuild = (id: string) => Promise<LoadedComponent>;

/** Build `id` from the relay's library, verified; undefined when the relay ships none. */
export async function loadRelayBuild(relay: RelayHttp, id: string, options: LoadOptions = {}): Promise<LoadedComponent | undefined> {
  const image = await relay.componentBuild(id);
  return image && loadBuildImage(id, image, options, `from the relay at ${relay.baseUrl}`);
}

/**
 * `load`, else the relay's build (fetched once per id). Where neither has it, `load`'s refusal stands, and the
 * runtime turns to the build the session carries (runtime.ts loadBuild).
 */
export function withRelayBuilds(load: LoadBuild, relay: RelayHttp, options: LoadOptions = {}): LoadBuild {
  const fetched = new Map<string, Promise<LoadedComponent | undefined>>();
  return async (id) => {
    try {
      return await load(id);
    } catch (err) {
      let build = fetched.get(id);
      if (!build) {
        fetched.set(id, (build = loadRelayBuild(relay, id, options)));
        // Only a build that arrived is kept: a relay that failed or had none is asked again next time.
        build.then((b) => b || fetched.delete(id), () => fetched.delete(id));
      }
      const found = await build;
      if (found) return found;
      throw err;
    }
  };
}
