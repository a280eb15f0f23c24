/** The host refuses, with typed errors, what it must not run: damaged or tampered files, ungranted imports, foreign images. */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { componentId, enableComponentWasmFeatures, folderSource, loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import { isFerryError } from '../../../src/core/errors.ts';
import { instantiate, loadComponent, MANIFEST_FILE, parseManifest } from '../../../src/core/runtime/index.ts';
import { encodeManifest } from '../../../src/core/runtime/manifest.ts';
import { objectId } from '../../../src/core/store/index.ts';
import { builtLogger, builtNotes } from '../../support/components.ts';
import { builtHolder } from '../../support/runtime-fixtures.ts';

/** A cold build of a component (first run after a source change) takes 5–40 s on the 2-core build machines. */
const BUILD_TIMEOUT = 180_000;
let notesDir: string;
let scratch: string;

beforeAll(async () => {
  enableComponentWasmFeatures();
  notesDir = await builtNotes();
  scratch = await mkdtemp(path.join(os.tmpdir(), 'ferry-refusals-'));
}, BUILD_TIMEOUT);
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** A copy of notes with one core module replaced, and a manifest re-signed for the new bytes when `resign`. */
async function tampered(name: string, bytes: Uint8Array, resign: boolean): Promise<{ dir: string; id: string }> {
  const dir = path.join(scratch, name);
  await cp(notesDir, dir, { recursive: true });
  const manifest = parseManifest(await readFile(path.join(dir, MANIFEST_FILE)));
  const target = manifest.coreModules[0]!;
  await writeFile(path.join(dir, target.file), bytes);
  if (resign) {
    target.sha256 = await objectId(bytes);
    await writeFile(path.join(dir, MANIFEST_FILE), encodeManifest(manifest));
  }
  return { dir, id: await componentId(dir) };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => expect.unreachable('expected a refusal'), (err: unknown) => err);
}

describe('component refusals', () => {
  it('malformed core module bytes → component/malformed', async () => {
    const { dir, id } = await tampered('malformed', new TextEncoder().encode('\0asm but not really a module'), true);
    const err = await rejection(loadComponent(id, folderSource(dir)));
    expect(isFerryError(err, 'component/malformed')).toBe(true);
    expect((err as Error).message).toMatch(/notes\.core\.wasm/);
  });

  it('a core module that does not match its hash → component/hash-mismatch', async () => {
    const original = await readFile(path.join(notesDir, 'notes.core.wasm'));
    const flipped = new Uint8Array(original);
    flipped[flipped.length - 1]! ^= 1;
    const { dir, id } = await tampered('flipped', flipped, false);
    const err = await rejection(loadComponent(id, folderSource(dir)));
    expect(isFerryError(err, 'component/hash-mismatch')).toBe(true);
    expect((err as Error).message).toMatch(/notes\.core\.wasm/);
  });

  it('a manifest that does not match the requested id → component/hash-mismatch', async () => {
    const err = await rejection(loadComponent('0'.repeat(64), folderSource(notesDir)));
    expect(isFerryError(err, 'component/hash-mismatch')).toBe(true);
  });

  it('an invalid manifest → component/bad-manifest', () => {
    expect(() => parseManifest(new TextEncoder().encode('{"format":"ferry-component","v":99}'))).toThrow(expect.objectContaining({ code: 'component/bad-manifest' }));
  });

  it('a component importing something not granted → component/ungranted-import; granted, it runs', async () => {
    const logger = await loadBuiltComponent(await builtLogger());
    expect(logger.manifest.imports).toEqual(['ferry:component/host']);
    const err = await rejection(instantiate(logger, {}));
    expect(isFerryError(err, 'component/ungranted-import')).toBe(true);
    expect((err as Error).message).toMatch(/ferry:component\/host/);

    const lines: string[] = [];
    const granted = await instantiate(logger, { 'ferry:component/host': { log: (line: string) => lines.push(line) } });
    expect((granted.exports.invoke as (a: string) => string)('{"x":1}')).toBe('{"calls":1}');
    expect(lines).toEqual(['call 1: {"x":1}']);
  }, BUILD_TIMEOUT);

  it('an image of another component → component/image-mismatch', async () => {
    const notes = await instantiate(await loadBuiltComponent(notesDir), {});
    const logger = await instantiate(await loadBuiltComponent(await builtLogger()), { 'ferry:component/host': { log: () => {} } });
    expect(() => notes.restore(logger.capture())).toThrow(expect.objectContaining({ code: 'component/image-mismatch' }));
    // Same id but a layout that does not fit (e.g. a forged image) is refused too.
    const image = notes.capture();
    image.memories.pop();
    expect(() => notes.restore(image)).toThrow(expect.objectContaining({ code: 'component/image-mismatch' }));
  }, BUILD_TIMEOUT);

  it('a component taking host resources (handles it could keep across calls) → component/holds-resources, even when granted', async () => {
    const holder = await loadBuiltComponent(await builtHolder());
    expect(holder.manifest.imports).toEqual(['ferry:fixture/handles']);
    let constructed = 0;
    class Counter {
      n = 0;
      constructor() {
        constructed++;
      }
      bump() {
        return ++this.n;
      }
    }
    const err = await rejection(instantiate(holder, { 'ferry:fixture/handles': { Counter } }));
    expect(isFerryError(err, 'component/holds-resources')).toBe(true);
    expect((err as Error).message).toMatch(/ferry:fixture\/handles\/counter/);
    // Refused before any of its code ran.
    expect(constructed).toBe(0);
  }, BUILD_TIMEOUT);
});
