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
 * replays the drafts its device made (recorded in the tps runs, with the device's measured drafting time as a pause: a
 * device's drafting costs the server nothing) against one engine through the VerifyBatcher, with the round trip as a
 * pause; the cloud-only count runs as many greedy generations at once on the same engine (one round trip each).
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
import { generateAll, engineVerifier, speculativeDecode, type DraftVerifier, type Verdict } from '../src/core/llm/index.ts';
import { generateTinyModel } from '../src/core/llm/gguf/index.ts';
import { VerifyConnection, verifyPath, type VerifySocket } from '../src/core/protocol/index.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea', 'Once upon a time', 'What is the weather', 'Tell me a joke'];
const MAX_TOKENS = 64;
const RTTS = [20, 80] as const;
/** The round trip of the capacity runs, and their per-token latency target (40 tokens/s, faster than reading). */
const SLO_RTT_MS = 20;
const SLO_MS_PER_TOKEN = 25;
const SESSION_COUNTS = [1, 2, 4, 8, 16, 32, 64] as const;
const CAPACITY_TRIES = 3;

export const speculativeSuite: Suite = {
  name: 'speculative',
  description: 'device drafts (q4_0), relay verifies (f32) over a delayed loopback, against cloud-only decoding',
  run,
};

interface Recorded {
  prompt: number[];
  rounds: Array<{ draft: number[]; draftMs: number }>;
  tokens: number;
}

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
  const [device, reference] = await Promise.all([engine({ modelPath: draftFile, slots: 1 }), engine({ modelPath: target, slots: 64 })]);
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
    const recorded: Recorded[] = [];
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
          const recording = recordingVerifier(verifier);
          const result = await speculativeDecode({ draft: device, verifier: recording.verifier, prompt, maxTokens: MAX_TOKENS, slot: 'device' });
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
          if (rtt === SLO_RTT_MS) recorded.push({ prompt, rounds: recording.rounds, tokens: result.tokens.length });
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
    figures.spec_identical = { value: identical ? 1 : 0, unit: 'bool' };
    Object.assign(figures, await capacity(reference, recorded));
  } finally {
    await Promise.all([device.dispose(), reference.dispose()]);
    await app.close();
    await rm(dir, { recursive: true, force: true });
  }
  return figures;
}

/** Wraps a verifier to keep each round's draft and how long the device took to draft it. */
function recordingVerifier(inner: DraftVerifier): { verifier: DraftVerifier; rounds: Recorded['rounds'] } {
  const rounds: Recorded['rounds'] = [];
  let last = performance.now();
  return {
    rounds,
    verifier: {
      async verify(draft, signal): Promise<Verdict> {
        rounds.push({ draft: [...draft], draftMs: performance.now() - last });
        const verdict = await inner.verify(draft, signal);
        last = performance.now();
        return verdict;
      },
    },
  };
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

/** Mean per-token latency (ms) of `n` speculative sessions at once, replaying recorded drafts. */
async function specLatency(engine: NodeLlamaEngine, recorded: readonly Recorded[], n: number, tag: string): Promise<number> {
  const batcher = new VerifyBatcher(engine);
  const latencies = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const session = recorded[i % recorded.length]!;
    const verifier = engineVerifier({ info: engine.info, verify: (r) => batcher.verify(r) }, session.prompt, `${tag}-${i}`);
    const t0 = performance.now();
    for (const round of session.rounds) {
      await pause(round.draftMs + SLO_RTT_MS);
      await verifier.verify(round.draft);
    }
    return (performance.now() - t0) / session.tokens;
  }));
  return mean(latencies);
}

/** Mean per-token latency (ms) of `n` cloud-only greedy generations at once (plus one round trip each). */
async function cloudLatency(engine: NodeLlamaEngine, recorded: readonly Recorded[], n: number, tag: string): Promise<number> {
  const latencies = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const session = recorded[i % recorded.length]!;
    const t0 = performance.now();
    await pause(SLO_RTT_MS);
    const done = await generateAll(engine, { prompt: { tokens: session.prompt }, maxTokens: session.tokens, slot: `${tag}-${i}` });
    return (performance.now() - t0) / done.tokens.length;
  }));
  return mean(latencies);
}

async function capacity(engine: NodeLlamaEngine, recorded: readonly Recorded[]): Promise<Figures> {
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
  const spec = await atSlo((n, tag) => specLatency(engine, recorded, n, `s${tag}`));
  const cloud = await atSlo((n, tag) => cloudLatency(engine, recorded, n, `c${tag}`));
  return {
    server_sessions_at_slo: compared(spec, 'sessions', 'server_sessions_at_slo_cloud_only', cloud),
  };
}
