/**
 * `npm run build:components [-- --force] [name…]`: builds components/<name>/ into components/dist/<name>/
 * (see scripts/components/build.ts). Unchanged components are skipped.
 */
import path from 'node:path';
import { buildComponents } from './components/build.ts';

const root = path.join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const names = args.filter((a) => !a.startsWith('-'));
const built = await buildComponents({
  srcDir: path.join(root, 'components'),
  outDir: path.join(root, 'components', 'dist'),
  witDir: path.join(root, 'components', 'wit'),
  ...(names.length > 0 ? { names } : {}),
  force: args.includes('--force'),
  log: (line) => console.log(line),
});
for (const c of built) console.log(`${c.name}: ${c.rebuilt ? 'built' : 'up to date'} (id ${c.id.slice(0, 16)}…)`);
