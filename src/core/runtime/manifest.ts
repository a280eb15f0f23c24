/**
 * The manifest of a built component (written by scripts/build-components.ts): which files make it up and the
 * SHA-256 of each. A component's id is the SHA-256 of its manifest's bytes, so an id pins the glue code and every
 * core module — the host checks that chain before it runs anything (STYLE.md: check code before running it).
 */
import { FerryError } from '../errors.ts';
import { isObjectId, type ObjectId } from '../store/index.ts';

export const MANIFEST_FORMAT = 'ferry-component';
export const MANIFEST_VERSION = 1;
export const MANIFEST_FILE = 'manifest.json';

export interface ManifestFile {
  file: string;
  sha256: ObjectId;
}

/**
 * What one call of a tool may take, as the tool's author declares it (component.json `limits`, written into the
 * manifest by the build, so its id pins them): wall time, linear memory (capped while the call runs: the memories
 * cannot grow past it), and the size of its answer. A host may lower them, never raise them (tools.ts).
 */
export interface DeclaredLimits {
  timeMs?: number;
  memoryBytes?: number;
  outputBytes?: number;
}

/** The most any tool may declare: ten minutes, 2 GiB of memory (in whole 64 KiB wasm pages), 16 MiB of output. */
export const LIMIT_BOUNDS = { timeMs: 600_000, memoryBytes: 2 * 1024 ** 3, outputBytes: 16 << 20, page: 65_536 } as const;

export interface ComponentManifest {
  format: typeof MANIFEST_FORMAT;
  v: typeof MANIFEST_VERSION;
  name: string;
  /** The WIT world it was built for, e.g. "tool" or "agent". */
  world: string;
  /** The ES module from `jco transpile --instantiation async`; self-contained (no imports of its own). */
  glue: ManifestFile;
  /** Every core module the glue asks for by name. */
  coreModules: ManifestFile[];
  /** Component-level imports (WIT interfaces) the component needs the host to grant. */
  imports: string[];
  /** Component-level exports (functions and interface instances). */
  exports: string[];
  /** Hash of the build inputs, so an unchanged component is not rebuilt. */
  sourceHash: ObjectId;
  /** A tool's declared per-call limits (absent: the host's defaults). */
  limits?: DeclaredLimits;
}

const FILE_NAME = /^[A-Za-z0-9._-]+$/;

/** Validates manifest bytes from outside (disk, network, store); every problem is a typed error. */
export function parseManifest(bytes: Uint8Array): ComponentManifest {
  let data: unknown;
  try {
    data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw bad('it is not UTF-8 JSON', cause);
  }
  if (!isRecord(data)) throw bad('it is not a JSON object');
  if (data.format !== MANIFEST_FORMAT) throw bad(`format is ${JSON.stringify(data.format)}, expected "${MANIFEST_FORMAT}"`);
  if (data.v !== MANIFEST_VERSION) {
    throw bad(`version ${JSON.stringify(data.v)} is not supported (this host reads version ${MANIFEST_VERSION}); rebuild the component`);
  }
  const coreModules = data.coreModules;
  if (!Array.isArray(coreModules) || coreModules.length === 0) throw bad('coreModules must be a non-empty list');
  const manifest: ComponentManifest = {
    format: MANIFEST_FORMAT,
    v: MANIFEST_VERSION,
    name: text(data.name, 'name'),
    world: text(data.world, 'world'),
    glue: file(data.glue, 'glue'),
    coreModules: coreModules.map((m, i) => file(m, `coreModules[${i}]`)),
    imports: texts(data.imports, 'imports'),
    exports: texts(data.exports, 'exports'),
    sourceHash: hash(data.sourceHash, 'sourceHash'),
    ...(data.limits === undefined ? {} : { limits: limits(data.limits) }),
  };
  const names = [manifest.glue.file, ...manifest.coreModules.map((m) => m.file)];
  if (new Set(names).size !== names.length) throw bad('a file is listed twice');
  return manifest;
}

/** The canonical bytes the build writes; `JSON.stringify` keeps the key order of the object literal above. */
export function encodeManifest(manifest: ComponentManifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n');
}

function limits(value: unknown): DeclaredLimits {
  if (!isRecord(value)) throw bad('limits must be { timeMs?, memoryBytes?, outputBytes? }');
  const out: DeclaredLimits = {};
  for (const key of Object.keys(value)) {
    if (key !== 'timeMs' && key !== 'memoryBytes' && key !== 'outputBytes') throw bad(`limits has an unknown field ${JSON.stringify(key)}`);
    const n = value[key];
    const max = LIMIT_BOUNDS[key];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > max) throw bad(`limits.${key} must be an integer from 1 to ${max}`);
    if (key === 'memoryBytes' && n % LIMIT_BOUNDS.page !== 0) throw bad(`limits.memoryBytes must be a whole number of 64 KiB pages`);
    out[key] = n;
  }
  return out;
}

function file(value: unknown, what: string): ManifestFile {
  if (!isRecord(value)) throw bad(`${what} must be { file, sha256 }`);
  const name = text(value.file, `${what}.file`);
  if (!FILE_NAME.test(name)) throw bad(`${what}.file ${JSON.stringify(name)} is not a plain file name`);
  return { file: name, sha256: hash(value.sha256, `${what}.sha256`) };
}

function hash(value: unknown, what: string): ObjectId {
  if (!isObjectId(value)) throw bad(`${what} must be a SHA-256 in lower-case hex`);
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) throw bad(`${what} must be a non-empty string`);
  return value;
}

function texts(value: unknown, what: string): string[] {
  if (!Array.isArray(value)) throw bad(`${what} must be a list of strings`);
  return value.map((v, i) => text(v, `${what}[${i}]`));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(why: string, cause?: unknown): FerryError {
  return new FerryError('component/bad-manifest', `The component manifest is invalid: ${why}. Rebuild it with \`npm run build:components\`.`, {
    ...(cause === undefined ? {} : { cause }),
  });
}
