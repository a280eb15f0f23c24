/**
 * `npm run bench` runs every suite; `npm run bench -- <suite> [<suite>…]` runs the named ones.
 * Each suite prints a table and writes bench/results/<suite>.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Figures, Suite } from './lib.ts';
import { suites } from './suites.ts';

const resultsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

function printTable(suite: string, figures: Figures): void {
  const rows = Object.entries(figures).map(([name, f]) => ({
    figure: name,
    value: `${+f.value.toPrecision(4)} ${f.unit}`,
    baseline: f.baseline ? `${f.baseline.name} = ${+f.baseline.value.toPrecision(4)} ${f.unit}` : '',
    ratio: f.ratio === undefined ? '' : `${+f.ratio.toPrecision(3)}x`,
  }));
  console.log(`\n== ${suite}`);
  console.table(rows);
}

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !suites.some((s) => s.name === w));
  if (unknown.length > 0) {
    console.error(`Unknown bench suite(s): ${unknown.join(', ')}. Available: ${suites.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  const chosen: Suite[] = wanted.length === 0 ? suites : suites.filter((s) => wanted.includes(s.name));
  await mkdir(resultsDir, { recursive: true });
  for (const suite of chosen) {
    console.log(`Running ${suite.name}: ${suite.description}`);
    const figures = await suite.run();
    printTable(suite.name, figures);
    const out = path.join(resultsDir, `${suite.name}.json`);
    await writeFile(out, JSON.stringify({ suite: suite.name, date: new Date().toISOString(), figures }, null, 2) + '\n');
    console.log(`wrote ${path.relative(process.cwd(), out)}`);
  }
}

await main();
