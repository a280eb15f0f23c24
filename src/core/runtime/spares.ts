/**
 * Fresh component instances made while a host is idle (as a run ends), so the next run needing the same build does
 * not instantiate it on its critical path — a resume restores every component into a fresh instance, and one that
 * was never called is exactly that. Keyed by component id, which pins the bytes; only for components granted nothing
 * (a node's runs are), so the instances are interchangeable.
 */
import type { Grants } from './instance.ts';
import type { LoadedComponent } from './load.ts';

/** Spares kept: at most one per component build, for this many builds. */
const MAX_SPARES = 8;

export class Spares<T> {
  readonly #spares = new Map<string, Promise<T>>();

  constructor(
    private readonly start: (component: LoadedComponent, grants: Grants) => Promise<T>,
    private readonly release: (spare: T) => Promise<void> | void = () => undefined,
  ) {}

  /** A spare of `component` when there is one and nothing is granted; otherwise a fresh start. */
  readonly take = (component: LoadedComponent, grants: Grants): Promise<T> => {
    const spare = Object.keys(grants).length === 0 ? this.#spares.get(component.id) : undefined;
    if (!spare) return this.start(component, grants);
    this.#spares.delete(component.id);
    return spare.catch(() => this.start(component, grants));
  };

  /** A spare for each of `components` that has none; the least recently made go beyond the bound. */
  refill(components: readonly LoadedComponent[]): void {
    for (const component of components) {
      if (this.#spares.has(component.id)) continue;
      const spare = this.start(component, {});
      spare.catch(() => this.#spares.delete(component.id));
      this.#spares.set(component.id, spare);
    }
    for (const id of [...this.#spares.keys()].slice(0, Math.max(0, this.#spares.size - MAX_SPARES))) void this.drop(id);
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.#spares.keys()].map((id) => this.drop(id)));
  }

  private async drop(id: string): Promise<void> {
    const spare = this.#spares.get(id);
    this.#spares.delete(id);
    await spare?.then((s) => this.release(s), () => undefined);
  }
}
