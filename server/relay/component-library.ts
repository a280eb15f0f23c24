/**
 * The components the relay's worker can run, found in configured folders of built components (each with its
 * manifest.json; a folder of such folders also works) and loaded by id. A session names its components by id,
 * which pins their bytes: a session asking for a component this relay does not have is refused, never guessed.
 * The relay also serves the library (api/components.ts), so sessions moving to it need not carry these builds.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '../../src/core/errors.ts';
import { MANIFEST_FILE, type LoadedComponent } from '../../src/core/runtime/index.ts';
import { encodeBuild } from '../../src/core/runtime/builds.ts';
import { componentId, loadBuiltComponent } from '../runtime/node-components.ts';

export interface ComponentLibrary {
  readonly ids: ReadonlyMap<string, string>;
  load(id: string): Promise<LoadedComponent>;
  /** Build `id`'s files as one image (runtime/builds.ts), as the relay serves it to hosts that lack it. */
  image(id: string): Promise<Uint8Array>;
}

async function isComponent(dir: string): Promise<boolean> {
  return stat(path.join(dir, MANIFEST_FILE)).then((s) => s.isFile(), () => false);
}

export async function openComponentLibrary(dirs: readonly string[]): Promise<ComponentLibrary> {
  const ids = new Map<string, string>();
  for (const dir of dirs) {
    const candidates = (await isComponent(dir))
      ? [dir]
      : (await readdir(dir, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory()).map((e) => path.join(dir, e.name));
    for (const c of candidates) if (await isComponent(c)) ids.set(await componentId(c), c);
  }
  const cache = new Map<string, Promise<LoadedComponent>>();
  const images = new Map<string, Promise<Uint8Array>>();
  const library: ComponentLibrary = {
    ids,
    image(id) {
      let image = images.get(id);
      if (!image) {
        images.set(id, (image = library.load(id).then((c) => encodeBuild(c.files))));
        image.catch(() => images.delete(id));
      }
      return image;
    },
    load(id) {
      const dir = ids.get(id);
      if (!dir) return Promise.reject(new FerryError('relay/unknown-component', `This relay has no component ${id.slice(0, 16)}…; the session needs a component build it was not given (--components).`));
      let loaded = cache.get(id);
      if (!loaded) cache.set(id, (loaded = loadBuiltComponent(dir)));
      return loaded;
    },
  };
  return library;
}
