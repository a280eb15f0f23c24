/**
 * A running component. The host instantiates it through the glue's `instantiateCore` hook so that it keeps every
 * core instance — that is how it reaches each memory and global — and it passes only the imports it granted.
 */
import { FerryError } from '../errors.ts';
import { captureImage, cloneImage, diffAndAdvance, findSlots, writeImage, type StateDelta, type StateImage } from './image.ts';
import type { LoadedComponent } from './load.ts';

/** Host implementations by WIT interface name as the glue asks for it (no version), e.g. { "ferry:component/host": { log } }. */
export type Grants = Readonly<Record<string, object>>;

export interface ComponentInstance {
  readonly component: LoadedComponent;
  /** The component's exports as the glue lifts them (WIT names in camelCase). */
  readonly exports: Readonly<Record<string, unknown>>;
  /** The image right after instantiation: what keyframes are taken against (state-codec.ts). Never changes. */
  readonly initial: StateImage;
  /** A full image of the state now; also the base the next `checkpoint()` diffs against. */
  capture(): StateImage;
  /** The pages and globals that changed since the last capture, checkpoint or restore. */
  checkpoint(): StateDelta;
  /**
   * Puts the instance into `image`'s state. The image must be of this component, and no memory of the instance may be
   * larger than in the image (memories never shrink): a fresh instance always qualifies.
   */
  restore(image: StateImage): void;
  /** Total bytes of the instance's linear memories now. */
  memoryBytes(): number;
}

export async function instantiate(component: LoadedComponent, grants: Grants): Promise<ComponentInstance> {
  const { manifest } = component;
  const ungranted = manifest.imports.filter((name) => !Object.hasOwn(grants, name));
  if (ungranted.length > 0) {
    throw new FerryError('component/ungranted-import', `Component "${manifest.name}" imports ${ungranted.join(', ')}, which the host did not grant. ` +
      'Grant it only if the component is meant to have that capability; otherwise do not run this component.', { details: { component: component.id, ungranted } });
  }
  refuseHostResources(component);
  // Only what was declared and granted reaches the glue; nothing else is even reachable by name.
  const imports = Object.fromEntries(manifest.imports.map((name) => [name, grants[name]]));
  const cores: WebAssembly.Instance[] = [];
  let exports: Record<string, unknown>;
  try {
    exports = await component.glue.instantiate(
      (file) => {
        const module = component.modules.get(file);
        if (!module) throw new FerryError('component/malformed', `The glue of component "${manifest.name}" asked for ${file}, which its manifest does not list.`);
        return module;
      },
      imports,
      async (module, moduleImports) => {
        const instance = await WebAssembly.instantiate(module, moduleImports);
        cores.push(instance);
        return instance;
      },
    );
  } catch (cause) {
    if (cause instanceof FerryError) throw cause;
    throw new FerryError('component/instantiate-failed', `Component "${manifest.name}" failed to instantiate: ${cause instanceof Error ? cause.message : String(cause)}.`, { cause });
  }
  const slots = findSlots(cores);
  let base = captureImage(component.id, slots);
  const initial = cloneImage(base);
  // Until the component first runs, its memories hold exactly `base` (the fresh image, or the last one restored):
  // a restore then writes only the pages that differ from it, without reading the memory to find them.
  let ran = false;
  return {
    component,
    exports: watchCalls(exports, () => (ran = true)),
    initial,
    capture() {
      base = captureImage(component.id, slots);
      return cloneImage(base);
    },
    checkpoint: () => diffAndAdvance(base, slots),
    restore(image) {
      if (image.component !== component.id) {
        throw new FerryError('component/image-mismatch', `The state image belongs to component ${image.component}, not ${component.id} ("${manifest.name}"). Load the component it was captured from.`);
      }
      writeImage(image, slots, ran ? { likely: initial } : { exact: base });
      base = cloneImage(image);
    },
    memoryBytes: () => slots.memories.reduce((n, { memory }) => n + memory.buffer.byteLength, 0),
  };
}

/**
 * A component that takes host resources (WIT `resource` types of an interface the host grants) can keep their
 * handles across calls, and a handle is host state no memory image carries: restored into a fresh instance it
 * would point at nothing. Such components are refused before they run. The canonical ABI gives them away: their
 * core modules import `[resource-drop]<type>` from the granted interface. A component exporting the `state`
 * interface is exempt: it restores itself from its own snapshot and must re-acquire its handles.
 */
function refuseHostResources(component: LoadedComponent): void {
  const granted = new Set(component.manifest.imports);
  const held: string[] = [];
  for (const module of component.modules.values()) {
    for (const { module: from, name } of WebAssembly.Module.imports(module)) {
      if (name.startsWith('[resource-drop]') && granted.has(from.replace(/@[^@/]*$/, ''))) held.push(`${from.replace(/@[^@/]*$/, '')}/${name.slice('[resource-drop]'.length)}`);
    }
  }
  // A component that carries its state through its own `state` interface is restored by that, not by an image.
  if (held.length > 0 && !component.manifest.exports.includes('state')) {
    throw new FerryError('component/holds-resources', `Component "${component.manifest.name}" takes host resources (${[...new Set(held)].join(', ')}). ` +
      'A resource handle kept across calls cannot be checkpointed or restored, so the host does not run it: pass data by value instead of handles.', {
      details: { component: component.id, resources: [...new Set(held)] },
    });
  }
}

/**
 * `exports` with every function in it (at any depth) calling `onCall` first: the only way into a component's code
 * once it is instantiated. Whatever a call returns (a resource's methods, say) is reached after that first call.
 */
export function watchCalls<T extends object>(exports: T, onCall: () => void): T {
  const wrapped = new WeakMap<object, unknown>();
  const watch = (value: unknown): unknown => {
    if ((typeof value !== 'function' && typeof value !== 'object') || value === null) return value;
    let proxy = wrapped.get(value);
    if (!proxy) {
      proxy = new Proxy(value, {
        get: (target, key) => {
          const value = Reflect.get(target, key);
          const own = Reflect.getOwnPropertyDescriptor(target, key);
          // A frozen property must be handed out as it is (a proxy's invariant): calls through it cannot be seen.
          if (own && !own.configurable && !own.writable) {
            onCall();
            return value;
          }
          return watch(value);
        },
        apply: (target, self, args) => {
          onCall();
          return Reflect.apply(target as (...a: unknown[]) => unknown, self, args);
        },
        construct: (target, args, newTarget) => {
          onCall();
          return Reflect.construct(target as new (...a: unknown[]) => object, args, newTarget);
        },
      });
      wrapped.set(value, proxy);
    }
    return proxy;
  };
  return watch(exports) as T;
}
