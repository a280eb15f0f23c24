/**
 * Loading a built component by id: the manifest must hash to the id, every file to its manifest entry, and every
 * core module must compile — each failure is a typed error that names the file, before any component code runs.
 * A tool's memories are capped at its memory limit as its modules compile (memory-cap.ts), wherever it will run.
 * The verified files are kept with it: a worker, or a session's closure, needs the bytes, not the compiled modules.
 */
import { FerryError } from '../errors.ts';
import { objectId, type ObjectId } from '../store/index.ts';
import { toolLimits } from './limits.ts';
import { MANIFEST_FILE, parseManifest, type ComponentManifest, type ManifestFile } from './manifest.ts';
import { capMemories } from './memory-cap.ts';

/** A built component's files by name (manifest.json, the glue, each core module). */
export type ComponentFiles = Record<string, Uint8Array>;

/** Where a component's files come from: a folder on disk, a URL prefix, the object store. */
export interface ComponentSource {
  read(file: string): Promise<Uint8Array>;
}

/** The shape of `jco transpile --instantiation async` output. */
export interface GlueModule {
  instantiate(
    getCoreModule: (file: string) => WebAssembly.Module,
    imports: Record<string, unknown>,
    instantiateCore: (module: WebAssembly.Module, imports?: WebAssembly.Imports) => Promise<WebAssembly.Instance>,
  ): Promise<Record<string, unknown>>;
}

export interface LoadedComponent {
  id: ObjectId;
  manifest: ComponentManifest;
  glue: GlueModule;
  modules: ReadonlyMap<string, WebAssembly.Module>;
  /** Its verified files, as built (hashes match the manifest). */
  files: ComponentFiles;
}

export interface LoadOptions {
  /**
   * Evaluates the verified glue source as an ES module. The default imports it from a `data:` URL, which works in
   * Node, pages and workers; a page whose CSP forbids that passes its own (e.g. a Blob URL).
   */
  importGlue?: (source: string) => Promise<unknown>;
  /** A tool's memory cap lower than it declares (a host holding its tools to less); never raises it. */
  maxMemoryBytes?: number;
}

export async function loadComponent(id: ObjectId, source: ComponentSource, options: LoadOptions = {}): Promise<LoadedComponent> {
  const manifestBytes = await source.read(MANIFEST_FILE);
  await verify(manifestBytes, id, `${MANIFEST_FILE} of component ${id}`);
  const manifest = parseManifest(manifestBytes);
  const memoryCap = manifest.world === 'tool' ? toolLimits(manifest, options.maxMemoryBytes === undefined ? {} : { memoryBytes: options.maxMemoryBytes }).memoryBytes : undefined;
  const files: ComponentFiles = { [MANIFEST_FILE]: manifestBytes };
  const [glue, modules] = await Promise.all([
    loadGlue(manifest, source, options.importGlue ?? importFromDataUrl, files),
    Promise.all(manifest.coreModules.map(async (entry) => [entry.file, await compile(manifest, entry, source, files, memoryCap)] as const)),
  ]);
  return { id, manifest, glue, modules: new Map(modules), files };
}

async function compile(manifest: ComponentManifest, entry: ManifestFile, source: ComponentSource, files: ComponentFiles, memoryCap: number | undefined): Promise<WebAssembly.Module> {
  const verified = await readVerified(manifest, entry, source);
  files[entry.file] = verified;
  const bytes = memoryCap === undefined ? verified : capMemories(verified, memoryCap, `Core module ${entry.file} of component "${manifest.name}"`);
  try {
    return await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (cause) {
    throw new FerryError('component/malformed', `Core module ${entry.file} of component "${manifest.name}" is not valid WebAssembly ` +
      `(${cause instanceof Error ? cause.message : String(cause)}). Rebuild the component; on Node 20 also enable --experimental-wasm-extended-const.`, { cause });
  }
}

async function loadGlue(manifest: ComponentManifest, source: ComponentSource, importGlue: (source: string) => Promise<unknown>, files: ComponentFiles): Promise<GlueModule> {
  const bytes = await readVerified(manifest, manifest.glue, source);
  files[manifest.glue.file] = bytes;
  let module: unknown;
  try {
    module = await importGlue(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new FerryError('component/malformed', `The glue module ${manifest.glue.file} of component "${manifest.name}" does not load; rebuild the component.`, { cause });
  }
  if (typeof (module as Partial<GlueModule> | null)?.instantiate !== 'function') {
    throw new FerryError('component/malformed', `The glue module ${manifest.glue.file} of component "${manifest.name}" exports no instantiate(); it was not built with --instantiation async.`);
  }
  return module as GlueModule;
}

async function readVerified(manifest: ComponentManifest, entry: ManifestFile, source: ComponentSource): Promise<Uint8Array> {
  const bytes = await source.read(entry.file);
  await verify(bytes, entry.sha256, `${entry.file} of component "${manifest.name}"`);
  return bytes;
}

async function verify(bytes: Uint8Array, expected: ObjectId, what: string): Promise<void> {
  const actual = await objectId(bytes);
  if (actual !== expected) {
    throw new FerryError('component/hash-mismatch', `${what} has SHA-256 ${actual}, expected ${expected}: the file was changed or damaged. Rebuild or re-download the component.`, {
      details: { expected, actual },
    });
  }
}

function importFromDataUrl(source: string): Promise<unknown> {
  const bytes = new TextEncoder().encode(source);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return import(/* @vite-ignore */ `data:text/javascript;base64,${btoa(binary)}`);
}
