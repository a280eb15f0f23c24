/**
 * handoff_ms_<n> (issue 6): a device moves a session whose transcript is n tokens to the relay's cloud worker —
 * from "move" (the generation in flight is cut) to the first token the worker streams back, as a client following
 * the run sees it. The parts: checkpoint (the cut step checkpointed on the device), upload (publish: seal, have/want,
 * upload, snapshot update), restore (start the run → the worker has fetched the snapshot, opened the session and
 * instantiated the components: its first `step` event), first token (the worker prefills the transcript and
 * generates). Baseline, measured in the same run: handoff_bound_ms_<n> = a raw loopback HTTP transfer of the same
 * uploaded bytes + the same engine's prefill of the same prompt (node-llama-cpp, 1 thread, loaded as the worker's).
 * The worker is the relay's embedded one, in this process, on the same generated model file.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { buildRelay } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { resolveModel } from '../server/llm/models.ts';
import { openModelEngine } from '../server/llm/open-model.ts';
import type { Engine, Prompt } from '../src/core/llm/engine.ts';
import { generateTinyModel } from '../src/core/llm/gguf/index.ts';
import { preparePrompt } from '../src/core/llm/prompt.ts';
import { RelayHttp, publishSession, toBase64Url, type RunMessage } from '../src/core/protocol/index.ts';
import { AgentRuntime } from '../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../src/core/store/index.ts';
import { fixtures, setupFor, tinyEngine } from '../test/support/runtime-agent.ts';
import { compared, type Figures } from './lib.ts';

const SIZES = [256, 2048] as const;
const REPS = 3;

interface Handoff {
  checkpointMs: number;
  /** The device after its checkpoint, before the upload starts: the loop pausing and the runtime closing. */
  deviceMs: number;
  uploadMs: number;
  restoreMs: number;
  /** The part of restoreMs after the snapshot was fetched: opening the session, instantiating the components. */
  openMs: number;
  firstTokenMs: number;
  totalMs: number;
  bytes: number;
  prompt: Prompt;
  promptTokens: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * User text that makes the scribe's prompt about `n` tokens (the tiny vocabulary is mostly one token a character).
 * Each `variant` differs from its first word on, so no engine holds a cached prefix of another's prompt: a worker
 * that receives a session has never seen it.
 */
async function textOf(engine: Engine, n: number, variant: number): Promise<string> {
  const words = ['ferry', 'river', 'harbour', 'crossing', 'tide', 'deck', 'rope', 'lantern'];
  let text = `${variant} `;
  for (let i = 0; ; i++) {
    const next = `${text}${words[(i * 5 + variant) % words.length]} `;
    // ~24 tokens of system message and chat template around it.
    if ((await engine.tokenize(next)).length > n - 24) return text.trim();
    text = next;
  }
}

/** One move of a fresh session whose transcript is the scribe's prompt on `text`. */
async function handoff(relayUrl: string, engine: Engine, f: Awaited<ReturnType<typeof fixtures>>, text: string): Promise<Handoff> {
  const device = createMemoryStore();
  const runtime = await AgentRuntime.create(device, setupFor(f, engine), { agent: f.ids.scribe, tools: [f.ids.tally] });
  // The move: the device is generating; it cuts the generation at its first token and checkpoints the step.
  const cut = new AbortController();
  let moveAt = 0;
  let checkpointAt = 0;
  for await (const event of runtime.run({ type: 'start', task: text }, cut.signal)) {
    if (event.type === 'token' && !moveAt) {
      moveAt = performance.now();
      cut.abort();
    }
    if (event.type === 'checkpoint' && !checkpointAt) checkpointAt = performance.now();
  }
  const state = runtime.loopState;
  if (!state.cut) throw new Error('the device generation was not cut');
  const sessionId = runtime.session.id;
  await runtime.dispose();

  const uploadStart = performance.now();
  const published = await publishSession(device, sessionId, new RelayHttp({ baseUrl: relayUrl }));
  const uploadEnd = performance.now();

  const res = await fetch(`${relayUrl}/api/v1/runs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ snapshot: published.snapshot.id, key: toBase64Url(published.key), writeToken: published.writeToken, input: { type: 'resume' } }),
  });
  const run = (await res.json()) as { id: string };
  const times = await new Promise<{ resumed: number; step: number; token: number }>((resolve, reject) => {
    const ws = new WebSocket(`${relayUrl.replace('http', 'ws')}/api/v1/runs/${run.id}/events`);
    let resumed = 0;
    let step = 0;
    let token = 0;
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as RunMessage;
      if (m.event.type === 'resumed' && !resumed) resumed = performance.now();
      if (m.event.type === 'step' && !step) step = performance.now();
      if (m.event.type === 'token' && !token) token = performance.now();
      if (m.event.type === 'error') reject(new Error(JSON.stringify(m.event)));
    });
    ws.on('close', () => (step && token ? resolve({ resumed, step, token }) : reject(new Error('the run streamed no token'))));
    ws.on('error', reject);
  });
  const promptTokens = (await engine.tokenize(text)).length + 24;
  return {
    checkpointMs: checkpointAt - moveAt,
    deviceMs: uploadStart - checkpointAt,
    uploadMs: uploadEnd - uploadStart,
    restoreMs: times.step - uploadEnd,
    openMs: times.step - times.resumed,
    firstTokenMs: times.token - times.step,
    totalMs: times.token - moveAt,
    bytes: published.sync.totalBytes,
    prompt: state.cut.prompt,
    promptTokens,
  };
}

/**
 * The engine's prefill of the same tokens: the prompt rendered as the worker renders it (preparePrompt), then the
 * wall time to the first token. The engine is loaded exactly as the relay loads its worker's (openModelEngine: same
 * model file, slots, threads, context) and warmed up on every sequence as the worker's is by its earlier runs. Each
 * prompt is measured once, and prompts differ from their first user word on, so at most the system prompt's KV is
 * reused — on the worker as here.
 */
async function prefillMs(engine: Engine, prompt: Prompt, slot: string): Promise<number> {
  const tokens = await preparePrompt(engine, prompt);
  const t0 = performance.now();
  let first = NaN;
  for await (const event of engine.generate({ prompt: { tokens }, maxTokens: 1, temperature: 0, slot })) if (event.type === 'token' && Number.isNaN(first)) first = performance.now() - t0;
  await engine.releaseSlot?.(slot);
  return first;
}

export async function handoffFigures(root: string, rawUrl: string, figures: Figures): Promise<void> {
  const model = path.join(root, 'handoff-model.gguf');
  await writeFile(model, generateTinyModel({ ctx: 4096 }));
  const f = await fixtures();
  const engine = await tinyEngine(model);
  const bound = await openModelEngine(await resolveModel(model, { dataDir: root }), root);
  // Warm like the worker's engine, which has served runs on each of its sequences: a sequence's first use costs more.
  for (let i = 0; i < bound.slots; i++) {
    for await (const event of bound.generate({ prompt: { text: `warm up ${i}` }, maxTokens: 1, temperature: 0, slot: `warm-up-${i}` })) void event;
  }
  const staticDir = path.join(root, 'handoff-dist');
  await mkdir(staticDir, { recursive: true });
  await writeFile(path.join(staticDir, 'index.html'), '<!doctype html><title>bench</title>');
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir, dataDir: path.join(root, 'handoff-data'), model, componentDirs: Object.values(f.dirs) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  try {
    // Warm-up: the worker's first run loads its engine and compiles the components.
    await handoff(url, engine, f, await textOf(engine, 64, 99));
    for (const n of SIZES) {
      const runs: Handoff[] = [];
      const bounds: { transfer: number; prefill: number }[] = [];
      for (let rep = 0; rep < REPS; rep++) {
        const h = await handoff(url, engine, f, await textOf(engine, n, rep));
        runs.push(h);
        const t0 = performance.now();
        await (await fetch(`${rawUrl}/up`, { method: 'POST', body: new Uint8Array(h.bytes), headers: { 'content-type': 'application/octet-stream' } })).arrayBuffer();
        bounds.push({ transfer: performance.now() - t0, prefill: await prefillMs(bound, h.prompt, `bound-${n}-${rep}`) });
      }
      const pick = (k: keyof Handoff): number => median(runs.map((r) => r[k] as number));
      const transfer = median(bounds.map((b) => b.transfer));
      const prefill = median(bounds.map((b) => b.prefill));
      figures[`handoff_ms_${n}`] = compared(pick('totalMs'), 'ms', `handoff_bound_ms_${n}`, transfer + prefill);
      figures[`handoff_bound_ms_${n}`] = { value: transfer + prefill, unit: 'ms' };
      // The breakdown, each against its part of the bound where it has one.
      const suffix = n === SIZES.at(-1) ? '' : `_${n}`;
      figures[`handoff_checkpoint_ms${suffix}`] = { value: pick('checkpointMs'), unit: 'ms' };
      figures[`handoff_upload_ms${suffix}`] = compared(pick('uploadMs'), 'ms', 'raw_loopback_transfer_ms', transfer);
      figures[`handoff_device_ms${suffix}`] = { value: pick('deviceMs'), unit: 'ms' };
      figures[`handoff_restore_ms${suffix}`] = { value: pick('restoreMs'), unit: 'ms' };
      figures[`handoff_restore_open_ms${suffix}`] = { value: pick('openMs'), unit: 'ms' };
      figures[`handoff_first_token_ms${suffix}`] = compared(pick('firstTokenMs'), 'ms', 'engine_prefill_ms', prefill);
      figures[`handoff_bytes_${n}`] = { value: pick('bytes'), unit: 'bytes' };
      figures[`handoff_prompt_tokens_${n}`] = { value: pick('promptTokens'), unit: 'tokens' };
    }
  } finally {
    await app.close();
    await engine.dispose();
    await bound.dispose();
  }
}
