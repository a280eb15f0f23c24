import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAll } from '../../../src/core/llm/index.ts';
import { cpuEngine, modelDir } from './fixtures.ts';
import type { ResumeJob, Resumed } from './resume-child.ts';

const exec = promisify(execFile);

async function child<T>(mode: 'interrupt' | 'resume', jobsFile: string): Promise<T> {
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', 'test/unit/llm/resume-child.ts', mode, jobsFile], { timeout: 150_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as T;
}

let models: Awaited<ReturnType<typeof modelDir>>;
beforeAll(async () => {
  models = await modelDir();
});
afterAll(async () => {
  await models?.cleanup();
});

describe('mid-generation resume in another process', () => {
  it('continues token-identically by re-prefilling the exact ids and by loading the saved KV state (f32 and f16)', async () => {
    const jobs: ResumeJob[] = [
      { model: await models.model('f32.gguf', { type: 'f32', seed: 1 }), saved: path.join(models.dir, 'f32.json'), prompt: 'Once upon a time', stopAfter: 17, maxTokens: 60 },
      {
        model: await models.model('f16.gguf', { type: 'f16', seed: 2, embd: 96, heads: 6, kvHeads: 2, ff: 192 }),
        saved: path.join(models.dir, 'f16.json'),
        prompt: '<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n',
        stopAfter: 5,
        maxTokens: 40,
      },
    ];
    const jobsFile = path.join(models.dir, 'jobs.json');
    await writeFile(jobsFile, JSON.stringify(jobs));
    // Process 1 is interrupted mid-generation; process 2 resumes it both ways; this process never stops.
    const interrupted = await child<number[][]>('interrupt', jobsFile);
    const resumed = await child<Array<{ kv: Resumed; prefill: Resumed }>>('resume', jobsFile);
    for (const [i, job] of jobs.entries()) {
      const engine = await cpuEngine(job.model, { slots: 1 });
      const full = await generateAll(engine, { prompt: { text: job.prompt }, maxTokens: job.maxTokens }).finally(() => engine.dispose());
      const before = interrupted[i] ?? [];
      const { kv, prefill } = resumed[i] ?? { kv: { tokens: [], cachedTokens: 0 }, prefill: { tokens: [], cachedTokens: 0 } };
      expect(full.tokens).toHaveLength(job.maxTokens);
      expect(before.length).toBeGreaterThanOrEqual(job.stopAfter);
      expect(before.length).toBeLessThan(job.maxTokens);
      expect([...before, ...prefill.tokens]).toEqual(full.tokens);
      expect([...before, ...kv.tokens]).toEqual(full.tokens);
      // The KV path really used the shipped state (all but the last generated token); the prefill path none.
      expect(kv.cachedTokens).toBe(full.stats.promptTokens + before.length - 1);
      expect(prefill.cachedTokens).toBe(0);
    }
  });
});
