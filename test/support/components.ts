/**
 * Built components for Node tests and benchmarks: builds (or reuses, when the sources are unchanged) the built-in
 * `notes` tool into components/dist and the test fixtures into node_modules/.cache, so they never reach git or lint.
 */
import path from 'node:path';
import { buildComponents } from '../../scripts/components/build.ts';

const root = path.join(import.meta.dirname, '..', '..');
const witDir = path.join(root, 'components', 'wit');

export async function builtNotes(): Promise<string> {
  const [notes] = await buildComponents({ srcDir: path.join(root, 'components'), outDir: path.join(root, 'components', 'dist'), witDir, names: ['notes'] });
  return notes!.dir;
}

/** `logger`: a tool importing ferry:component/host (test/fixtures/components/logger). */
export async function builtLogger(): Promise<string> {
  const [logger] = await buildComponents({
    srcDir: path.join(root, 'test', 'fixtures', 'components'),
    outDir: path.join(root, 'node_modules', '.cache', 'ferry-test-components'),
    witDir,
    names: ['logger'],
  });
  return logger!.dir;
}
