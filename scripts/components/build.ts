/**
 * Builds every component source folder (components/<name>/ with a component.json naming its WIT world) into
 * <out>/<name>/: `jco componentize` with the QuickJS backend → `jco transpile --instantiation async` → the
 * binaryen pass that exports every mutable global → manifest.json with the SHA-256 of each file.
 * Offline. A component whose inputs hash to the manifest's `sourceHash` is not rebuilt — which also keeps its id:
 * every step is reproducible except componentize-qjs's pre-initialised QuickJS heap, which differs per build.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { FerryError } from '../../src/core/errors.ts';
import { MANIFEST_FILE, encodeManifest, parseManifest, type ComponentManifest, type DeclaredLimits } from '../../src/core/runtime/manifest.ts';
import { exportMutableGlobals, loadBinaryen } from './export-globals.ts';

const run = promisify(execFile);
const require = createRequire(import.meta.url);
const jcoDir = packageDir('@bytecodealliance/jco', require);
const jcoBin = path.join(jcoDir, 'dist', 'jco.js');
/** The tools whose versions decide the output; componentize-qjs is resolved the way jco resolves it. */
const toolDirs = [jcoDir, packageDir('componentize-qjs', createRequire(jcoBin)), packageDir('binaryen', require)];
const ENTRIES = ['index.ts', 'index.js'];
const CONFIG_FILE = 'component.json';

export interface BuildOptions {
  /** Folder holding one sub-folder per component (each with component.json and index.ts|index.js). */
  srcDir: string;
  outDir: string;
  witDir: string;
  /** Only these components (default: every folder with a component.json). */
  names?: string[];
  /** Rebuild even when the inputs are unchanged. */
  force?: boolean;
  log?: (line: string) => void;
}

export interface BuiltComponent {
  name: string;
  dir: string;
  /** SHA-256 of manifest.json: the component's id. */
  id: string;
  manifest: ComponentManifest;
  rebuilt: boolean;
}

interface ComponentConfig {
  world: string;
  /** A tool's per-call limits, as its author declares them: { timeMs, memoryMiB, outputKiB } (any of them). */
  limits?: { timeMs?: number; memoryMiB?: number; outputKiB?: number };
}

export async function buildComponents(options: BuildOptions): Promise<BuiltComponent[]> {
  const names = options.names ?? (await findComponents(options.srcDir));
  const built: BuiltComponent[] = [];
  // One at a time: componentize is CPU-bound and the build machines have two cores.
  for (const name of names) built.push(await buildOne(name, options));
  return built;
}

async function findComponents(srcDir: string): Promise<string[]> {
  const entries = await readdir(srcDir, { withFileTypes: true });
  const names: string[] = [];
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const files = await readdir(path.join(srcDir, e.name));
    if (files.includes(CONFIG_FILE)) names.push(e.name);
  }
  return names.sort();
}

async function buildOne(name: string, options: BuildOptions): Promise<BuiltComponent> {
  const srcDir = path.join(options.srcDir, name);
  const outDir = path.join(options.outDir, name);
  const config = await readConfig(srcDir);
  const sourceHash = await hashInputs(srcDir, options.witDir, config);
  const upToDate = async () => {
    const existing = await readBuilt(name, outDir);
    return !options.force && existing?.manifest.sourceHash === sourceHash ? { ...existing, rebuilt: false } : undefined;
  };
  // Test files in parallel workers may ask for the same component: the first builds, the others wait and reuse it.
  return (await upToDate()) ?? withLock(`${outDir}.lock`, async () => (await upToDate()) ?? build(name, srcDir, outDir, config, sourceHash, options));
}

async function build(name: string, srcDir: string, outDir: string, config: ComponentConfig, sourceHash: string, options: BuildOptions): Promise<BuiltComponent> {
  const t0 = performance.now();
  const entry = (await readdir(srcDir)).find((f) => ENTRIES.includes(f));
  if (!entry) throw new FerryError('component/no-entry', `Component ${name} has no ${ENTRIES.join(' or ')} in ${srcDir}.`);
  const component = await componentize(path.join(srcDir, entry), options.witDir, config.world);
  // Loaded on demand: jco's module graph takes seconds to import, and an up-to-date build needs none of it.
  const { transpile } = await import('@bytecodealliance/jco');
  const { files, imports, exports } = await transpile(component, { name, instantiation: 'async', noTypescript: true, quiet: true });

  const glueFile = `${name}.js`;
  const glue = files[glueFile];
  if (!glue) throw new FerryError('component/build-failed', `jco transpile produced no ${glueFile} for component ${name}.`);
  const out = new Map<string, Uint8Array>([[glueFile, glue]]);
  const binaryen = await loadBinaryen();
  for (const [file, bytes] of Object.entries(files)) {
    if (file.endsWith('.wasm')) out.set(file, exportMutableGlobals(binaryen, bytes).bytes);
  }
  const coreFiles = [...out.keys()].filter((f) => f.endsWith('.wasm')).sort();
  const manifest: ComponentManifest = {
    format: 'ferry-component',
    v: 1,
    name,
    world: config.world,
    glue: { file: glueFile, sha256: sha256(glue) },
    coreModules: coreFiles.map((file) => ({ file, sha256: sha256(out.get(file)!) })),
    imports: [...imports].sort(),
    exports: exports.map(([n]) => n).sort(),
    sourceHash,
    ...(config.limits ? { limits: declaredLimits(config.limits) } : {}),
  };
  const manifestBytes = encodeManifest(manifest);
  parseManifest(manifestBytes); // declared limits out of bounds fail the build, not the first load
  out.set(MANIFEST_FILE, manifestBytes);
  await publish(outDir, out);
  options.log?.(`built ${name} (${config.world}) in ${Math.round(performance.now() - t0)} ms: ${coreFiles.length} core modules`);
  return { name, dir: outDir, id: sha256(manifestBytes), manifest, rebuilt: true };
}

async function readConfig(srcDir: string): Promise<ComponentConfig> {
  const file = path.join(srcDir, CONFIG_FILE);
  const data: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (typeof data !== 'object' || data === null || typeof (data as { world?: unknown }).world !== 'string') {
    throw new FerryError('component/bad-config', `${file} must be a JSON object with a "world" string (e.g. {"world": "tool"}).`);
  }
  const { world, limits } = data as { world: string; limits?: unknown };
  if (limits === undefined) return { world };
  if (typeof limits !== 'object' || limits === null) throw new FerryError('component/bad-config', `${file}: "limits" must be { "timeMs", "memoryMiB", "outputKiB" } (any of them).`);
  return { world, limits: limits as NonNullable<ComponentConfig['limits']> };
}

/** component.json's limits in the manifest's units (bytes); parseManifest checks them when the manifest is read back. */
function declaredLimits(limits: NonNullable<ComponentConfig['limits']>): DeclaredLimits {
  return {
    ...(limits.timeMs !== undefined ? { timeMs: limits.timeMs } : {}),
    ...(limits.memoryMiB !== undefined ? { memoryBytes: limits.memoryMiB * 1024 * 1024 } : {}),
    ...(limits.outputKiB !== undefined ? { outputBytes: limits.outputKiB * 1024 } : {}),
  };
}

async function readBuilt(name: string, outDir: string): Promise<Omit<BuiltComponent, 'rebuilt'> | undefined> {
  try {
    const bytes = await readFile(path.join(outDir, MANIFEST_FILE));
    return { name, dir: outDir, id: sha256(bytes), manifest: parseManifest(bytes) };
  } catch {
    return undefined;
  }
}

/**
 * Everything that decides the output: the component's files, the WIT, the build code and the tool versions.
 * Paths are relative and sorted so the hash does not depend on where the checkout lives.
 */
async function hashInputs(srcDir: string, witDir: string, config: ComponentConfig): Promise<string> {
  const h = createHash('sha256');
  const add = (label: string, bytes: Uint8Array | string) => {
    h.update(`${label}\0${bytes.length}\0`);
    h.update(bytes);
  };
  add('config', JSON.stringify(config));
  for (const [label, dir] of [['src', srcDir], ['wit', witDir]] as const) {
    for (const file of await listFiles(dir)) add(`${label}/${file}`, await readFile(path.join(dir, file)));
  }
  for (const file of ['build.ts', 'export-globals.ts']) add(`build/${file}`, await readFile(path.join(import.meta.dirname, file)));
  for (const dir of toolDirs) {
    const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as { name: string; version: string };
    add(`version/${pkg.name}`, pkg.version);
  }
  return h.digest('hex');
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) {
      if (e.name !== 'dist' && e.name !== 'node_modules') out.push(...(await listFiles(dir, rel)));
    } else {
      out.push(rel);
    }
  }
  return out.sort();
}

async function componentize(entry: string, witDir: string, world: string): Promise<Uint8Array> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'ferry-componentize-'));
  try {
    const out = path.join(tmp, 'component.wasm');
    // QuickJS backend (STACK.md): 1.6 MB, ~2 s; WASI stubbed (the host grants nothing implicitly), no async ABI.
    const args = [jcoBin, 'componentize', entry, '--wit', witDir, '--world-name', world,
      '--backend', 'qjs', '--backend-qjs-stub-wasi', '--backend-qjs-disable-async', '-o', out];
    try {
      await run(process.execPath, args, { maxBuffer: 16 * 1024 * 1024 });
    } catch (cause) {
      const stderr = (cause as { stderr?: string }).stderr ?? '';
      throw new FerryError('component/build-failed', `jco componentize failed for ${entry}:\n${stderr.trim()}`, { cause });
    }
    return new Uint8Array(await readFile(out));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Writes into a fresh folder, then renames it into place, so a half-written component is never visible. */
async function publish(outDir: string, files: Map<string, Uint8Array>): Promise<void> {
  await mkdir(path.dirname(outDir), { recursive: true });
  const staging = await mkdtemp(`${outDir}.staging-`);
  try {
    for (const [file, bytes] of files) await writeFile(path.join(staging, file), bytes);
    await rm(outDir, { recursive: true, force: true });
    await rename(staging, outDir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A cross-process lock: `mkdir` is atomic. A lock older than the longest build is left over from a killed process
 * and is taken over.
 */
async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  const staleMs = 10 * 60_000;
  await mkdir(path.dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      await mkdir(lockDir);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = await stat(lockDir).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > staleMs) await rm(lockDir, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

/** A package's root folder (its package.json may not be exported, so walk up from its main entry). */
function packageDir(name: string, from: NodeJS.Require): string {
  let dir = path.dirname(from.resolve(name));
  while (!existsSync(path.join(dir, 'package.json')) || path.basename(dir) !== name.split('/').pop()) {
    const up = path.dirname(dir);
    if (up === dir) throw new FerryError('component/toolchain-missing', `Cannot find the ${name} package; run npm install.`);
    dir = up;
  }
  return dir;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
