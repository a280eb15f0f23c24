/**
 * Edge drafts, cloud verifies: a device drafts with its own model and the relay's model verifies over
 * /api/v2/verify, through a loopback proxy that adds a round-trip delay (half each way), against cloud-only decoding
 * (the relay's /v1/completions generating every token) through the same proxy at the same delay.
 *
 * Models: the target is the tiny generated test model (64 wide, 2 layers, f32, seed 1) served by the relay (node-llama-cpp,
 * CPU); the device's draft is the same weights quantized to 4 bits (q4_0), run by a second node-llama-cpp engine in
 * this process (1 thread), with the adaptive draft length. Acceptance is what these two models give under greedy
 * decoding on the bench prompts: nothing is assumed or injected. Both sides share this machine's CPU.
 *
 * spec_acceptance: accepted / drafted ids over all runs. cloud_passes_per_token: verifications per generated token
 * (cloud-only decoding takes 1 pass per token). spec_tps_rtt<d>: generated tokens per second from the request to the
 * last token, at d ms round trip; baseline cloud_tps_rtt<d>. spec_identical: 1 when every speculative output equals
 * the relay model's own greedy output (the same file loaded here).
 *
 * server_sessions_at_slo: how many sessions the server keeps under a per-token latency target at once. Each session
 * runs the device's adaptive draft length against one engine through the VerifyBatcher, live (its rounds' measured
 * time rises with the server's load, and its k with it), drafting from a table of the device model's own greedy
 * drafts at every position of the prompt's output (made beforehand with the device engine), with the device's measured
 * drafting time per id and the round trip as pauses: a device's drafting costs the server nothing. Its draft length is
 * SLO-aware (DraftLength targetMsPerToken = the target: no longer than the target needs);
 * server_sessions_at_slo_fastest_k is the same without the target (the k with the most tokens per ms). The cloud-only
 * count runs as many greedy generations at once on the same engine (one round trip each).
 * server_busy_ms_per_token_n32: with 32 sessions, the time the server had a verification (or a cloud-only generation)
 * in flight, per token decided: what a token costs the server on each side.
 * Both sides are batched across sessions: a verification pass of n sessions' drafts is one llama.cpp batch (VerifyBatcher;
 * split in batches of the context size, 512 tokens, beyond that), and n cloud-only generations share each decoding step
 * (node-llama-cpp puts every sequence's next token in one batch).
 * Counts go up to 256 (llama.cpp's sequences per context); server_sessions_at_slo_capped is 1 when a side met the
 * target at 256 (its count is then a lower bound). server_positions_per_token: token positions the server evaluates per
 * generated token (draft + 1 per round; 1 for cloud-only): on this CPU target a pass costs about its positions, so this
 * bounds what verification can save against batched cloud-only decoding.
 * Each count is tried CAPACITY_TRIES times (median). The target: the sessions' mean per-token latency at most SLO_MS_PER_TOKEN, at SLO_RTT_MS round trip (the mean,
 * since acceptance differs much between prompts: one prompt's draft may agree on every token, another's on none).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { buildRelay } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { createNodeLlamaEngine, type NodeLlamaEngine } from '../server/llm/node-llama-engine.ts';
import { VerifyBatcher } from '../server/llm/verify-batch.ts';
import { DraftLength, generateAll, engineVerifier, speculativeDecode } from '../src/core/llm/index.ts';
import { generateTinyModel } from '../src/core/llm/gguf/index.ts';
import { VerifyConnection, verifyPath, type VerifySocket } from '../src/core/protocol/index.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea', 'Once upon a time', 'What is the weather', 'Tell me a joke'];
const MAX_TOKENS = 64;
const RTTS = [20, 80] as const;
/** The round trip of the capacity runs, and their per-token latency target (40 tokens/s, faster than reading). */
const SLO_RTT_MS = 20;
const SLO_MS_PER_TOKEN = 25;
/** Up to llama.cpp's 256 sequences in one context, in steps of 1.5-2x (the ratio's resolution). */
const SESSION_COUNTS = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256] as const;
const CAPACITY_TRIES = 3;
/** The load at which the server's busy time per token is measured. */
const BUSY_SESSIONS = 32;

export const speculativeSuite: Suite = {
  name: 'speculative',
  description: 'device drafts (q4_0), relay verifies (f32) over a delayed loopback, against cloud-only decoding',
  run,
};

/** A prompt, its target output, and the device's greedy draft (up to DRAFT_MAX ids) after each prefix of that output. */
interface DraftTable {
  prompt: number[];
  tokens: readonly number[];
  drafts: number[][];
}
const DRAFT_MAX = 16;

async function run(): Promise<Figures> {
  const dir = await mkdtemp(path.join(tmpdir(), 'ferry-bench-spec-'));
  const target = path.join(dir, 'target.gguf');
  const draftFile = path.join(dir, 'draft.gguf');
  await writeFile(target, generateTinyModel());
  await writeFile(draftFile, generateTinyModel({ type: 'q4_0' }));
  // The relay serves a PWA shell; a placeholder is enough here.
  await mkdir(path.join(dir, 'dist'), { recursive: true });
  await writeFile(path.join(dir, 'dist', 'index.html'), '<!doctype html><title>bench</title>');
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir: path.join(dir, 'dist'), dataDir: path.join(dir, 'data'), model: target, embeddedWorker: false });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const relayPort = (app.server.address() as net.AddressInfo).port;
  const engine = (o: { modelPath: string; slots: number }) => createNodeLlamaEngine({ ...o, gpu: false, threads: 1 });
  const [device, reference] = await Promise.all([engine({ modelPath: draftFile, slots: 1 }), engine({ modelPath: target, slots: SESSION_COUNTS.at(-1)! })]);
  const figures: Figures = {};
  try {
    const prompts = await Promise.all(PROMPTS.map(async (text) => [1, ...(await reference.tokenize(text))]));
    const expected = await Promise.all(prompts.map(async (prompt) => (await generateAll(reference, { prompt: { tokens: prompt }, maxTokens: MAX_TOKENS, slot: 'reference' })).tokens));
    const modelId = reference.info.model;
    let identical = true;
    let drafted = 0;
    let accepted = 0;
    let rounds = 0;
    let tokens = 0;
    let draftMsPerId = 0;
    for (const rtt of RTTS) {
      const proxy = await delayProxy(relayPort, rtt);
      const base = `127.0.0.1:${proxy.port}`;
      try {
        // Warm both paths (the relay loads its model on first use; sockets and slots get made).
        await cloudOnly(base, modelId, prompts[0]!);
        const connection = await VerifyConnection.connect(`ws://${base}${verifyPath}`, (url) => new WebSocket(url) as unknown as VerifySocket);
        let specMs = 0;
        let cloudMs = 0;
        let specTokens = 0;
        let cloudTokens = 0;
        let specRounds = 0;
        let specDraftMs = 0;
        let specVerifyMs = 0;
        for (const [i, prompt] of prompts.entries()) {
          const t0 = performance.now();
          const verifier = await connection.session(prompt, { model: modelId });
          const result = await speculativeDecode({ draft: device, verifier, prompt, maxTokens: MAX_TOKENS, slot: 'device' });
          specMs += performance.now() - t0;
          verifier.close();
          specTokens += result.tokens.length;
          identical &&= result.tokens.length === expected[i]!.length && result.tokens.every((t, j) => t === expected[i]![j]);
          specRounds += result.rounds;
          specDraftMs += result.draftMs;
          specVerifyMs += result.verifyMs;
          drafted += result.drafted;
          accepted += result.accepted;
          rounds += result.rounds;
          tokens += result.tokens.length;
          if (rtt === SLO_RTT_MS) draftMsPerId += result.draftMs / Math.max(1, result.drafted) / prompts.length;
          const c0 = performance.now();
          cloudTokens += await cloudOnly(base, modelId, prompt);
          cloudMs += performance.now() - c0;
        }
        connection.close();
        figures[`spec_tps_rtt${rtt}`] = compared((specTokens / specMs) * 1000, 'tok/s', `cloud_tps_rtt${rtt}`, (cloudTokens / cloudMs) * 1000);
        // Where a round's time goes: the device's drafting, and the verification's round trip (delay included).
        figures[`spec_draft_ms_per_round_rtt${rtt}`] = { value: specDraftMs / specRounds, unit: 'ms' };
        figures[`spec_verify_ms_per_round_rtt${rtt}`] = { value: specVerifyMs / specRounds, unit: 'ms' };
      } finally {
        await proxy.close();
      }
    }
    figures.spec_acceptance = { value: accepted / drafted, unit: 'x' };
    figures.spec_draft_length_mean = { value: drafted / rounds, unit: 'tokens' };
    figures.cloud_passes_per_token = compared(rounds / tokens, 'passes/token', 'cloud_only_passes_per_token', 1);
    // What the server's work scales with here: every round evaluates the draft and the context's new token.
    figures.server_positions_per_token = compared((drafted + rounds) / tokens, 'positions/token', 'cloud_only_positions_per_token', 1);
    figures.spec_identical = { value: identical ? 1 : 0, unit: 'bool' };
    const tables = await Promise.all(prompts.map(async (prompt, i): Promise<DraftTable> => ({ prompt, tokens: expected[i]!, drafts: [] })));
    for (const table of tables) {
      for (let p = 0; p < table.tokens.length; p++) {
        const context = [...table.prompt, ...table.tokens.slice(0, p)];
        table.drafts.push([...(await generateAll(device, { prompt: { tokens: context }, maxTokens: DRAFT_MAX, slot: 'table' })).tokens]);
      }
    }
    figures.spec_draft_ms_per_id = { value: draftMsPerId, unit: 'ms' };
    Object.assign(figures, await capacity(reference, tables, draftMsPerId));
  } finally {
    await Promise.all([device.dispose(), reference.dispose()]);
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}

/** One cloud-only generation through /v1/completions (token-id prompt, greedy); returns the tokens generated. */
async function cloudOnly(base: string, model: string, prompt: number[]): Promise<number> {
  const response = await fetch(`http://${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt, max_tokens: MAX_TOKENS, temperature: 0 }),
  });
  if (!response.ok) throw new Error(`cloud-only generation failed: ${response.status} ${await response.text()}`);
  const body = (await response.json()) as { usage: { completion_tokens: number } };
  return body.usage.completion_tokens;
}

/** A TCP proxy to 127.0.0.1:`port` that delays every chunk by rtt / 2 in each direction (order kept). */
async function delayProxy(port: number, rtt: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), rtt / 2));
      from.on('end', () => setTimeout(() => to.end(), rtt / 2));
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Time during which the server had work in flight (any session's), and the tokens decided meanwhile. */
class Busy {
  ms = 0;
  tokens = 0;
  #inFlight = 0;
  #since = 0;

  async during<T>(work: () => Promise<T>): Promise<T> {
    if (this.#inFlight++ === 0) this.#since = performance.now();
    try {
      return await work();
    } finally {
      if (--this.#inFlight === 0) this.ms += performance.now() - this.#since;
    }
  }
}

/**
 * Mean per-token latency (ms) of `n` speculative sessions at once: each drafts (from its table) as long as its own
 * DraftLength says, from what its rounds took, and pauses for the drafting and the round trip.
 */
async function specLatency(engine: NodeLlamaEngine, tables: readonly DraftTable[], draftMsPerId: number, n: number, tag: string, target: number | undefined, busy = new Busy()): Promise<number> {
  const batcher = new VerifyBatcher(engine);
  const latencies = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const table = tables[i % tables.length]!;
    const verifier = engineVerifier({ info: engine.info, verify: (r) => batcher.verify(r) }, table.prompt, `${tag}-${i}`);
    const lengths = new DraftLength(target === undefined ? {} : { targetMsPerToken: target });
    const t0 = performance.now();
    let produced = 0;
    while (produced < table.tokens.length) {
      const draft = table.drafts[produced]!.slice(0, Math.min(lengths.next, table.tokens.length - produced - 1));
      const draftMs = draft.length * draftMsPerId;
      await pause(draftMs + SLO_RTT_MS);
      const v0 = performance.now();
      const verdict = await busy.during(() => verifier.verify(draft));
      lengths.record({ drafted: draft.length, accepted: verdict.accepted, draftMs, verifyMs: performance.now() - v0 + SLO_RTT_MS });
      produced += verdict.accepted + 1;
      if (verdict.next === null) break;
    }
    busy.tokens += produced;
    return (performance.now() - t0) / produced;
  }));
  return mean(latencies);
}

/** Mean per-token latency (ms) of `n` cloud-only greedy generations at once (plus one round trip each). */
async function cloudLatency(engine: NodeLlamaEngine, tables: readonly DraftTable[], n: number, tag: string, busy = new Busy()): Promise<number> {
  const latencies = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const table = tables[i % tables.length]!;
    const t0 = performance.now();
    await pause(SLO_RTT_MS);
    const done = await busy.during(() => generateAll(engine, { prompt: { tokens: table.prompt }, maxTokens: table.tokens.length, slot: `${tag}-${i}` }));
    busy.tokens += done.tokens.length;
    return (performance.now() - t0) / done.tokens.length;
  }));
  return mean(latencies);
}

async function capacity(engine: NodeLlamaEngine, tables: readonly DraftTable[], draftMsPerId: number): Promise<Figures> {
  const slo = SLO_MS_PER_TOKEN;
  const atSlo = async (latency: (n: number, tag: string) => Promise<number>): Promise<number> => {
    let best = 0;
    for (const n of SESSION_COUNTS) {
      // The median of a few tries: one try on a busy machine says more about its neighbours than about the server.
      const tries: number[] = [];
      for (let t = 0; t < CAPACITY_TRIES; t++) tries.push(await latency(n, `n${n}-${t}`));
      tries.sort((a, b) => a - b);
      if (tries[Math.floor(tries.length / 2)]! > slo) break;
      best = n;
    }
    return best;
  };
  const spec = await atSlo((n, tag) => specLatency(engine, tables, draftMsPerId, n, `s${tag}`, slo));
  const fastest = await atSlo((n, tag) => specLatency(engine, tables, draftMsPerId, n, `f${tag}`, undefined));
  const cloud = await atSlo((n, tag) => cloudLatency(engine, tables, n, `c${tag}`));
  // Where the server's time goes at one load: its busy time per token decided, verifying or decoding.
  const specBusy = new Busy();
  const fastestBusy = new Busy();
  const cloudBusy = new Busy();
  await specLatency(engine, tables, draftMsPerId, BUSY_SESSIONS, 'busy-s', slo, specBusy);
  await specLatency(engine, tables, draftMsPerId, BUSY_SESSIONS, 'busy-f', undefined, fastestBusy);
  await cloudLatency(engine, tables, BUSY_SESSIONS, 'busy-c', cloudBusy);
  const most = SESSION_COUNTS.at(-1)!;
  return {
    server_sessions_at_slo: compared(spec, 'sessions', 'server_sessions_at_slo_cloud_only', cloud),
    server_sessions_at_slo_fastest_k: compared(fastest, 'sessions', 'server_sessions_at_slo_cloud_only', cloud),
    // 1: a side met the target at the most sessions tried, so its count is a lower bound and the ratio says little.
    [`server_busy_ms_per_token_n${BUSY_SESSIONS}`]: compared(specBusy.ms / specBusy.tokens, 'ms', `server_busy_ms_per_token_n${BUSY_SESSIONS}_cloud_only`, cloudBusy.ms / cloudBusy.tokens),
    [`server_busy_ms_per_token_n${BUSY_SESSIONS}_fastest_k`]: { value: fastestBusy.ms / fastestBusy.tokens, unit: 'ms' },
    server_sessions_at_slo_capped: { value: [spec, fastest, cloud].includes(most) ? 1 : 0, unit: 'bool' },
  };
}
