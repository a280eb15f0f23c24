/**
 * The agent container's component host (DESIGN.md §4): load a built component by content hash, instantiate it
 * with only the granted imports, and capture / diff / restore its state as a memory image.
 */
export { loadComponent, type ComponentSource, type GlueModule, type LoadedComponent, type LoadOptions } from './load.ts';
export { instantiate, type ComponentInstance, type Grants } from './instance.ts';
export { applyDelta, cloneImage, pageBytes, PAGE_SIZE, type GlobalImage, type GlobalValue, type MemoryImage, type StateDelta, type StateImage } from './image.ts';
export { MANIFEST_FILE, parseManifest, type ComponentManifest, type ManifestFile } from './manifest.ts';
