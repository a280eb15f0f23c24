import { writeFileSync } from 'node:fs';
import { generateTinyModel } from './src/core/llm/gguf/index.ts';
import { cpuEngine } from './test/unit/llm/fixtures.ts';
import { runWorkload } from './eval/run-workload.ts';
import { WORKLOADS } from './eval/workloads.ts';
writeFileSync('/tmp/gt/m8k.gguf', generateTinyModel({ ctx: 8192 }));
const engine = await cpuEngine('/tmp/gt/m8k.gguf', { contextSize: 8192 });
for (const w of WORKLOADS) {
  const t0 = performance.now();
  const r = await runWorkload(w, engine, { steps: Number(process.argv[2] ?? 6), toolChoice: (process.argv[3] ?? 'required') as never, sampling: { maxTokens: 128 } });
  console.log(w.name, r.steps, r.calls, r.valid, r.restarts, ((performance.now() - t0) / 1000).toFixed(1) + 's', JSON.stringify(r.bad.slice(0, 2)));
}
await engine.dispose();
