/**
 * `ferry models`: the model catalog, and what of it is downloaded into <data>/models (whole, or an interrupted
 * download that the next `ferry start --model NAME` resumes), with the generated demo model, the offline default.
 */
import path from 'node:path';
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { DEMO_MODEL, ModelCatalog } from '../../src/core/llm/catalog.ts';
import { defaultConfig } from '../config.ts';
import { DEMO_MODEL_FILE } from '../llm/demo-model.ts';
import { loadCatalog, localModels } from '../llm/models.ts';

export const modelsUsage = `ferry models [--data DIR] [--catalog FILE]
  Lists the models \`ferry start --model NAME\` (and \`ferry worker --model NAME\`) download by name, and which of
  them are in <data>/models. A model is downloaded once, resumed if interrupted, and checked (size, SHA-256).
  --data DIR       FERRY_DATA       ./.ferry-data
  --catalog FILE   FERRY_CATALOG    none   (a JSON list of more entries, e.g. the same models on a mirror)`;

export async function modelsCommand(args: string[], env: NodeJS.ProcessEnv = process.env, print: (line: string) => void = console.log): Promise<void> {
  const { values } = parseArgs({ args, strict: true, options: { data: { type: 'string' }, catalog: { type: 'string' } } });
  const dataDir = path.resolve(values.data ?? env.FERRY_DATA ?? defaultConfig.dataDir);
  const catalogFile = values.catalog ?? env.FERRY_CATALOG;
  const catalog = catalogFile ? await loadCatalog(catalogFile) : new ModelCatalog();
  const local = await localModels(dataDir, catalog);
  const demo = await stat(path.join(dataDir, 'models', DEMO_MODEL_FILE)).catch(() => undefined);
  const rows = [
    ['NAME', 'MODEL', 'PARAMS', 'QUANT', 'SIZE', 'CONTEXT', 'LICENSE', `IN ${path.join(dataDir, 'models')}`],
    [DEMO_MODEL.name, 'Demo model (generated, random weights)', '-', '-', demo ? mb(demo.size) : '-', '-', '-', `offline default${demo ? '' : ', written on first start'}`],
    ...local.catalog.map((s) => [
      s.entry.name,
      s.entry.label,
      s.entry.parameters,
      s.entry.quantization,
      mb(s.entry.bytes),
      s.entry.contextLength.toLocaleString('en'),
      s.entry.license,
      s.state === 'downloaded' ? 'downloaded' : s.state === 'partial' ? `partial: ${Math.floor((s.bytes / s.entry.bytes) * 100)}%, resumes on start` : '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) print(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  if (local.others.length > 0) print(`\nOther GGUF files there (use with --model PATH): ${local.others.map((o) => `${o.name} (${mb(o.bytes)})`).join(', ')}`);
  print('\nRun one with: ferry start --model NAME (downloaded once, then checked by size and SHA-256).');
}

const mb = (bytes: number): string => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(bytes < 1e7 ? 1 : 0)} MB`);
