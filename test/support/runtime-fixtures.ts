/**
 * Built test-fixture components for the runtime tests: `scribe` (an agent), `spinner` (a tool that can loop
 * forever or hold memory), `bounded` (the same, under per-call limits it declares itself), `scribe-next` (the
 * scribe's next build, as an app update ships it) and `holder` (a tool
 * keeping a host resource handle, built against its own WIT).
 * Built into node_modules/.cache so they never reach git or lint; unchanged sources are not rebuilt.
 */
import path from 'node:path';
import { buildComponents } from '../../scripts/components/build.ts';

const root = path.join(import.meta.dirname, '..', '..');
const outDir = path.join(root, 'node_modules', '.cache', 'ferry-test-components');

export async function builtFixture(name: 'scribe' | 'scribe-next' | 'spinner' | 'tally' | 'journal' | 'logger' | 'bounded'): Promise<string> {
  const [built] = await buildComponents({ srcDir: path.join(root, 'test', 'fixtures', 'components'), outDir, witDir: path.join(root, 'components', 'wit'), names: [name] });
  return built!.dir;
}

export async function builtHolder(): Promise<string> {
  const src = path.join(root, 'test', 'fixtures', 'resource-components');
  const [built] = await buildComponents({ srcDir: src, outDir, witDir: path.join(src, 'wit'), names: ['holder'] });
  return built!.dir;
}
