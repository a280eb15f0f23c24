/**
 * Child process for the resume tests: each phase runs in a fresh process, so nothing but the files passed between
 * them (a transcript, a KV state) carries a generation from one host to the next.
 *   interrupt <jobs.json>: per job, generate, cancel after `stopAfter` tokens, save the transcript (<saved>) and
 *     the slot's KV state (<saved>.kv).
 *   resume <jobs.json>: per job, resume by loading the KV state into one slot, and by re-prefilling the
 *     transcript's exact ids in another.
 * Prints one JSON line: per job, the ids generated (and for resume, how many prompt tokens were cached).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { generateAll, preparePrompt, resumeRequest, type KvState, type PartialGeneration } from '../../../src/core/llm/index.ts';
import { createNodeLlamaEngine } from '../../../server/llm/node-llama-engine.ts';

export interface ResumeJob {
  readonly model: string;
  readonly saved: string;
  readonly prompt: string;
  readonly stopAfter: number;
  readonly maxTokens: number;
}

export interface Resumed {
  readonly tokens: number[];
  readonly cachedTokens: number;
}

interface Saved {
  partial: PartialGeneration;
  kv: Omit<KvState, 'bytes'>;
}

async function interrupt(job: ResumeJob): Promise<number[]> {
  const engine = await createNodeLlamaEngine({ modelPath: job.model, gpu: false, threads: 1, slots: 1 });
  try {
    const tokens = await preparePrompt(engine, { text: job.prompt });
    const controller = new AbortController();
    let seen = 0;
    const done = await generateAll(engine, { prompt: { tokens }, maxTokens: job.maxTokens, slot: 's', signal: controller.signal }, () => {
      if (++seen === job.stopAfter) controller.abort();
    });
    const { bytes, ...kv } = await engine.saveKv('s');
    const { tokenizerId } = engine.info;
    const saved: Saved = {
      partial: {
        prompt: { tokenizerId, tokens, text: job.prompt },
        generated: { tokenizerId, tokens: done.tokens, text: done.text },
        request: { maxTokens: job.maxTokens },
      },
      kv,
    };
    await writeFile(job.saved, JSON.stringify(saved));
    await writeFile(`${job.saved}.kv`, bytes);
    return [...done.tokens];
  } finally {
    await engine.dispose();
  }
}

async function resume(job: ResumeJob): Promise<{ kv: Resumed; prefill: Resumed }> {
  const engine = await createNodeLlamaEngine({ modelPath: job.model, gpu: false, threads: 1, slots: 2 });
  try {
    const saved = JSON.parse(await readFile(job.saved, 'utf8')) as Saved;
    const plan = await resumeRequest(engine, saved.partial);
    if (!plan.reused) throw new Error('the transcript ids were not reused');
    await engine.loadKv('kv', { ...saved.kv, bytes: new Uint8Array(await readFile(`${job.saved}.kv`)) });
    const kv = await generateAll(engine, { ...plan.request, slot: 'kv' });
    // The other sequence is still empty: this one prefills every id.
    const prefill = await generateAll(engine, { ...plan.request, slot: 'prefill' });
    return {
      kv: { tokens: [...kv.tokens], cachedTokens: kv.stats.cachedTokens },
      prefill: { tokens: [...prefill.tokens], cachedTokens: prefill.stats.cachedTokens },
    };
  } finally {
    await engine.dispose();
  }
}

const [mode, file] = process.argv.slice(2);
if (!file || (mode !== 'interrupt' && mode !== 'resume')) throw new Error('usage: resume-child.ts interrupt|resume <jobs.json>');
const jobs = JSON.parse(await readFile(file, 'utf8')) as ResumeJob[];
const results = [];
for (const job of jobs) results.push(mode === 'interrupt' ? await interrupt(job) : await resume(job));
process.stdout.write(`${JSON.stringify(results)}\n`);
