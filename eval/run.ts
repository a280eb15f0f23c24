/**
 * `npm run eval -- [--model FILE|URL|NAME] [--data DIR] [--steps N] [--tool-choice auto|required] [--temperature T]`:
 * the agent evaluation. Runs every workload (eval/workloads.ts) on node-llama-cpp with the given GGUF model (a file,
 * a URL, or a catalog name, downloaded once into <data>/models as `ferry start` does) and prints a table; writes
 * bench/results/eval.json in the benchmarks' shape: tool-call validity, and the checks of the answers a script can
 * make (eval/checks.ts). Without --model it runs on a generated random-weight model, where it checks the machinery,
 * not answers: such a model never starts a call by itself, so calls are required there (every generation is one
 * call) and every one must be valid (tool_call_valid_ratio = 1); its answer checks report failures, as they should.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { generateTinyModel } from '../src/core/llm/gguf/index.ts';
import type { ToolChoice } from '../src/core/llm/tool-generation.ts';
import { createNodeLlamaEngine } from '../server/llm/node-llama-engine.ts';
import { resolveModel } from '../server/llm/models.ts';
import { downloadProgress } from '../server/llm/open-model.ts';
import { defaultConfig, modelSpec } from '../server/config.ts';
import type { Figures } from '../bench/lib.ts';
import { runWorkload } from './run-workload.ts';
import { WORKLOADS } from './workloads.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    data: { type: 'string' },
    steps: { type: 'string', default: '50' },
    'tool-choice': { type: 'string' },
    temperature: { type: 'string', default: '0' },
    'max-tokens': { type: 'string', default: '256' },
  },
});

async function main(): Promise<void> {
  const steps = Number(values.steps);
  const temperature = Number(values.temperature);
  const maxTokens = Number(values['max-tokens']);
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`--steps must be a positive integer, got ${values.steps}`);
  const generated = values.model === undefined;
  const choice = (values['tool-choice'] ?? (generated ? 'required' : 'auto')) as ToolChoice;
  if (choice !== 'auto' && choice !== 'required') throw new Error(`--tool-choice must be auto or required, got ${String(values['tool-choice'])}`);
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-eval-'));
  try {
    let modelPath = path.join(dir, 'generated.gguf');
    if (generated) await writeFile(modelPath, generateTinyModel({ ctx: 8192 }));
    else modelPath = (await resolveModel(modelSpec(values.model!), { dataDir: path.resolve(values.data ?? defaultConfig.dataDir), onProgress: downloadProgress((m) => console.log(`eval: ${m}`)) })).path;
    const engine = await createNodeLlamaEngine({ modelPath, gpu: generated ? false : 'auto', threads: 1, slots: 2, ...(generated ? { contextSize: 8192 } : {}) });
    console.log(`eval: ${generated ? 'a generated random-weight model (machinery only)' : `${values.model} (${modelPath})`} on ${engine.info.device}, ${steps} steps per workload, tool choice ${choice}`);
    const figures: Figures = {};
    let calls = 0;
    let valid = 0;
    try {
      for (const workload of WORKLOADS) {
        const t0 = performance.now();
        const result = await runWorkload(workload, engine, { steps, toolChoice: choice, sampling: { maxTokens, temperature, seed: 1 } });
        calls += result.calls;
        valid += result.valid;
        figures[`tool_calls_${workload.name}`] = { value: result.calls, unit: 'calls' };
        figures[`tool_call_valid_ratio_${workload.name}`] = { value: result.calls === 0 ? 0 : result.valid / result.calls, unit: 'x' };
        figures[`seconds_${workload.name}`] = { value: (performance.now() - t0) / 1000, unit: 's' };
        for (const [name, value] of Object.entries(result.checks)) figures[name] = { value, unit: /ratio|_patched|_pass$/.test(name) ? 'x' : 'count' };
        for (const bad of result.bad.slice(0, 3)) console.log(`  ${workload.name}: invalid call ${bad.raw.slice(0, 120)}: ${bad.problem}`);
      }
    } finally {
      await engine.dispose();
    }
    figures.tool_calls = { value: calls, unit: 'calls' };
    figures.tool_call_valid_ratio = { value: calls === 0 ? 0 : valid / calls, unit: 'x' };
    console.table(Object.fromEntries(Object.entries(figures).map(([name, f]) => [name, `${+f.value.toPrecision(4)} ${f.unit}`])));
    const out = path.join(import.meta.dirname, '..', 'bench', 'results', 'eval.json');
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify({ suite: 'eval', date: new Date().toISOString(), figures }, null, 2) + '\n');
    console.log(`wrote ${path.relative(process.cwd(), out)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
