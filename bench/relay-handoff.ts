/**
 * Moving a live session (issue 6), on two generated models, each measured against its own baseline in the same run:
 * the tiny test model (64 wide, 2 layers: figures without suffix, the names the issue gives) and the larger
 * benchmark model of `npm run bench -- llm` (512 wide, 8 layers, f32: suffix `_m512`), whose prefill is closer to
 * a real model's share of a handoff. Weights are random in both: speeds are real, the text is not.
 *
 * handoff_ms_<n>: a device moves a session whose conversation is n tokens (its prompt adds the agent's system prompt
 * with its tool: handoff_prompt_tokens_<n>) to the relay's cloud worker while a reply streams, as the app moves it
 * (host/session-runner.ts `move`: RuntimeRunner → RelayRunner): the worker is warmed while the device still streams
 * (host/move-ahead.ts; how long the device streamed on meanwhile: handoff_warm_ms_<n>), then the generation is cut —
 * the figure is from the device's last token to the first token the worker streams back: the pause a person sees in
 * the stream.
 *
 * handoff_cold_ms_<n>: the same move without warming (the path of a move when nothing streams) — from "move" (the
 * generation in flight is cut) to the first token the worker streams back, as a client following the run sees it.
 * Its parts: checkpoint (the cut step checkpointed on the device), upload (publish: seal, upload and move the
 * snapshot in one request; the relay's build list is asked once per relay and the workers' keys while it goes up,
 * as RelayRunner.resume does), restore (start the run → the worker has fetched the snapshot, opened the session and
 * instantiated the components: its first `step` event; in parts: restore_start, the start request; restore_fetch,
 * the worker opening the key and fetching the snapshot, overlapped; restore_open, opening the runtime, with the cut
 * reply prefilled meanwhile), first token (the worker generates, the prompt cached by then). Baseline of both:
 * handoff_bound_ms_<n> = a raw loopback HTTP transfer of the cold move's uploaded bytes + the same engine's prefill
 * of its prompt (node-llama-cpp, 1 thread, loaded as the worker's). The worker is the relay's
 * embedded one, in this process, on the same model file.
 *
 * handoff_kv_ms_<n>: the session runs on a cloud worker A and moves to another worker B whose engine has never seen
 * it — from "move" (A is asked to hand back: it cuts the step, saves its KV into the checkpoint, publishes) to B's
 * first token (B fetches the snapshot with the KV entry, loads it, continues). Baseline handoff_prefill_ms_<n>: the
 * same move of the same session where A saves no KV and B, which loads none, prefills the transcript instead. A and
 * B are RunHosts in this process driven directly (no dispatcher, no event WebSocket) against the same relay; B's
 * engines (one per variant) are loaded once, and each rep's session differs from its first word on, so B reuses at
 * most the system prompt's cache.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { buildRelay } from '../server/app.ts';
import { defaultConfig } from '../server/config.ts';
import { resolveModel } from '../server/llm/models.ts';
import { openModelEngine } from '../server/llm/open-model.ts';
import type { Engine, Prompt } from '../src/core/llm/engine.ts';
import { generateTinyModel, type TinyModelParams } from '../src/core/llm/gguf/index.ts';
import { preparePrompt } from '../src/core/llm/prompt.ts';
import { measureProfile } from '../src/core/host/measure-profile.ts';
import { RelayRunner } from '../src/core/host/relay-runner.ts';
import { RunHost, type RunEvent } from '../src/core/host/run-host.ts';
import { RuntimeRunner } from '../src/core/host/runtime-runner.ts';
import { move } from '../src/core/host/session-runner.ts';
import { RelayHttp, RunEventReader, createWorkerKeys, publishSession, sealKeyTo, sealRunInput, startSealedRun, type PublishResult } from '../src/core/protocol/index.ts';
import { followRun, type StreamSocket } from '../src/core/parallel/index.ts';
import { deriveSessionKeys } from '../src/core/snapshot/index.ts';
import type { KvEvent } from '../src/core/runtime/kv-handoff.ts';
import { AgentRuntime } from '../src/core/runtime/runtime.ts';
import { createMemoryStore, type Store } from '../src/core/store/index.ts';
import { fixtures, loader, setupFor, tinyEngine, type Fixtures } from '../test/support/runtime-agent.ts';
import { compared, type Figures } from './lib.ts';

const SIZES = [256, 2048] as const;

interface BenchModel {
  /** Appended to every figure name ('' keeps the issue's names for the tiny model). */
  suffix: string;
  params: Partial<TinyModelParams>;
  /** Moves per size and kind; medians are reported. Fewer on the larger model, whose prefills take seconds. */
  reps: number;
}

const MODELS: BenchModel[] = [
  { suffix: '', params: { ctx: 4096 }, reps: 5 },
  // The benchmark model of bench/llm.ts.
  { suffix: '_m512', params: { embd: 512, layers: 8, heads: 8, kvHeads: 4, ff: 1536, ctx: 8192, type: 'f32', seed: 11 }, reps: 3 },
];

interface Handoff {
  checkpointMs: number;
  /** The device after its checkpoint, before the upload starts: the loop pausing and the runtime closing. */
  deviceMs: number;
  uploadMs: number;
  restoreMs: number;
  /** The part of restoreMs until the relay answered the start request. */
  startMs: number;
  /** The part of restoreMs from the start's answer to the worker's `resumed`: it opened the key and fetched the snapshot. */
  fetchMs: number;
  /** The part of restoreMs after the snapshot was fetched: opening the session, instantiating the components. */
  openMs: number;
  firstTokenMs: number;
  totalMs: number;
  bytes: number;
  sessionId: string;
  prompt: Prompt;
  promptTokens: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Lets what a finished run leaves to do in the background settle (a worker makes its spare tool instances once a run
 * ends): each measurement starts on an idle machine, and none is charged for the one before.
 */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 500));

/** Everything one model's measurements share: the device's engine, the baseline engine, a relay with its worker. */
interface Rig {
  f: Fixtures;
  model: string;
  /** The device's engine (and worker A's, in the KV move). */
  engine: Engine;
  /** Loaded as the relay loads its worker's, for the prefill baseline. */
  bound: Engine;
  app: FastifyInstance;
  url: string;
}

async function openRig(root: string, model: BenchModel, f: Fixtures): Promise<Rig> {
  const dir = path.join(root, `handoff${model.suffix || '_tiny'}`);
  await mkdir(path.join(dir, 'dist'), { recursive: true });
  const file = path.join(dir, 'model.gguf');
  await writeFile(file, generateTinyModel(model.params));
  await writeFile(path.join(dir, 'dist', 'index.html'), '<!doctype html><title>bench</title>');
  const engine = await tinyEngine(file);
  const bound = await openModelEngine(await resolveModel(file, { dataDir: dir }), dir);
  // As the relay does with its worker's engine before the first run.
  await measureProfile(bound, { name: 'bound', slots: 1 });
  const app = await buildRelay({ ...defaultConfig, host: '127.0.0.1', port: 0, logLevel: 'silent', rateLimitPerMinute: 0, staticDir: path.join(dir, 'dist'), dataDir: path.join(dir, 'data'), model: file, componentDirs: Object.values(f.dirs) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { f, model: file, engine, bound, app, url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

async function closeRig(rig: Rig): Promise<void> {
  await rig.app.close();
  await rig.engine.dispose();
  await rig.bound.dispose();
}

/**
 * User text of about `n` tokens for the scribe (the tiny vocabulary is mostly one token a character): `n` names the
 * conversation's size; the prompt the worker prefills adds the scribe's system prompt with its tool (~540 tokens,
 * the same in every session, so every engine has it cached from earlier ones) — handoff_prompt_tokens_<n> is the
 * prompt as prefilled. Each `variant` differs from its first word on, so no engine holds a cached prefix of another
 * session's conversation: a worker that receives a session has never seen it.
 */
async function textOf(engine: Engine, n: number, variant: number): Promise<string> {
  const words = ['ferry', 'river', 'harbour', 'crossing', 'tide', 'deck', 'rope', 'lantern'];
  let text = `${variant} `;
  for (let i = 0; ; i++) {
    const next = `${text}${words[(i * 5 + variant) % words.length]} `;
    // ~24 tokens of the user turn's own template around it.
    if ((await engine.tokenize(next)).length > n - 24) return text.trim();
    text = next;
  }
}

/** A session on the device, generating on `text`, cut at its first token (the move) and checkpointed there. */
async function cutOnDevice(rig: Rig, text: string): Promise<{ device: Store; sessionId: string; prompt: Prompt; moveAt: number; checkpointAt: number; closedAt: number }> {
  const device = createMemoryStore();
  const runtime = await AgentRuntime.create(device, setupFor(rig.f, rig.engine), { agent: rig.f.ids.scribe, tools: [rig.f.ids.tally] });
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
  await runtime.dispose();
  return { device, sessionId: runtime.session.id, prompt: state.cut.prompt, moveAt, checkpointAt, closedAt: performance.now() };
}

interface LiveMove {
  /** From the move asked (a reply streaming) to the device's last token: the worker warmed meanwhile. */
  warmMs: number;
  /** From the device's last token to the worker's first: the pause in the stream. */
  pauseMs: number;
}

/** The reply a live move cuts: long enough to stream on the device while the worker warms. */
const LIVE_REPLY_TOKENS = 1000;

const openWs = (url: string, protocols?: string[]): StreamSocket => new WebSocket(url, protocols) as unknown as StreamSocket;

/**
 * One live move as the app makes one: a fresh session streams a long reply to `text` on the device (the scribe's
 * `/long`), the person moves it to the relay's cloud (`move`), and the worker's first token is awaited; then it is
 * handed back, so the next measurement starts idle.
 */
async function liveMove(rig: Rig, text: string): Promise<LiveMove> {
  const device = createMemoryStore();
  const runtime = await AgentRuntime.create(device, setupFor(rig.f, rig.engine, { sampling: { maxTokens: LIVE_REPLY_TOKENS, temperature: 0, seed: 0 } }), { agent: rig.f.ids.scribe, tools: [rig.f.ids.tally] });
  let streaming!: () => void;
  const streams = new Promise<void>((resolve) => (streaming = resolve));
  let lastHere = 0;
  const here = new RuntimeRunner(runtime, (event) => {
    if (event.type !== 'token') return;
    lastHere = performance.now();
    streaming();
  });
  let tokenAt = 0;
  let first!: () => void;
  const firstToken = new Promise<void>((resolve) => (first = resolve));
  let failed: unknown;
  const away = new RelayRunner({
    sessionId: runtime.session.id,
    store: device,
    relay: new RelayHttp({ baseUrl: rig.url }),
    openSocket: openWs,
    onEvent: (event) => {
      if (event.type === 'token' && !tokenAt) {
        tokenAt = performance.now();
        first();
      }
      if (event.type === 'error' || event.type === 'step-failed') failed ??= new Error(JSON.stringify(event));
    },
  });
  const sent = here.send({ type: 'start', task: `/long ${text}` });
  await streams;
  const askedAt = performance.now();
  await move(here, away, { code: 'relay/move-failed', message: 'The bench move failed' });
  await sent;
  await Promise.race([firstToken, away.settled()]);
  if (failed) throw failed;
  if (!tokenAt) throw new Error('the moved run streamed no token');
  if (!runtime.loopState.cut) throw new Error('the reply ended before the move cut it: make LIVE_REPLY_TOKENS longer');
  await away.stop();
  await away.close();
  await runtime.dispose();
  return { warmMs: lastHere - askedAt, pauseMs: tokenAt - lastHere };
}

/** One move of a fresh session whose transcript is the scribe's prompt on `text`, device → the relay's worker. */
async function handoff(rig: Rig, text: string): Promise<Handoff> {
  const cut = await cutOnDevice(rig, text);
  const uploadStart = performance.now();
  // As a move to the relay's workers goes (RelayRunner.resume): the workers to seal the key to are asked for while
  // the session goes up, without the builds the relay ships.
  const http = new RelayHttp({ baseUrl: rig.url });
  const workers = http.listWorkers();
  const published = await publishSession(cut.device, cut.sessionId, http, undefined, { omitRelayBuilds: true });
  const uploadEnd = performance.now();
  const run = await startSealedRun(http, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input: { type: 'resume' } }, await workers);
  const started = performance.now();
  let resumed = 0;
  let step = 0;
  let token = 0;
  let failed: unknown;
  await followRun(http, run.id, ({ event }) => {
    if (event.type === 'resumed' && !resumed) resumed = performance.now();
    if (event.type === 'step' && !step) step = performance.now();
    if (event.type === 'token' && !token) token = performance.now();
    if (event.type === 'error') failed ??= new Error(JSON.stringify(event));
  }, { key: published.key, open: openWs });
  if (failed) throw failed;
  if (!step || !token) throw new Error('the run streamed no token');
  const times = { started, resumed, step, token };
  const promptTokens = (await preparePrompt(rig.engine, cut.prompt)).length;
  return {
    checkpointMs: cut.checkpointAt - cut.moveAt,
    deviceMs: uploadStart - cut.checkpointAt,
    uploadMs: uploadEnd - uploadStart,
    restoreMs: times.step - uploadEnd,
    startMs: times.started - uploadEnd,
    fetchMs: times.resumed - times.started,
    openMs: times.step - times.resumed,
    firstTokenMs: times.token - times.step,
    totalMs: times.token - cut.moveAt,
    bytes: published.sync.totalBytes,
    sessionId: cut.sessionId,
    prompt: cut.prompt,
    promptTokens,
  };
}

/**
 * The engine's prefill of the same tokens: the prompt rendered as the worker renders it (preparePrompt), then the
 * wall time to the first token. The engine is loaded exactly as the relay loads its worker's (openModelEngine: same
 * model file, slots, threads, context) and is given the same sessions in the same order, each in a slot named by
 * its session and kept, as the worker keeps them: so its sequences hold what the worker's hold, and it reuses a
 * cached prefix (the system prompt every session shares) exactly where the worker can — no more.
 */
async function prefillMs(engine: Engine, prompt: Prompt, slot: string): Promise<number> {
  const tokens = await preparePrompt(engine, prompt);
  const t0 = performance.now();
  let first = NaN;
  for await (const event of engine.generate({ prompt: { tokens }, maxTokens: 1, temperature: 0, slot })) if (event.type === 'token' && Number.isNaN(first)) first = performance.now() - t0;
  return first;
}

async function deviceToCloud(rig: Rig, rawUrl: string, model: BenchModel, figures: Figures): Promise<void> {
  const { suffix, reps } = model;
  // Warm-up: the worker's first run loads its engine and compiles the components; the baseline's engine sees it too.
  const warm = await handoff(rig, await textOf(rig.engine, 64, 99));
  await prefillMs(rig.bound, warm.prompt, warm.sessionId);
  await liveMove(rig, await textOf(rig.engine, 64, 98));
  await settle();
  for (const n of SIZES) {
    const runs: Handoff[] = [];
    const live: LiveMove[] = [];
    const bounds: { transfer: number; prefill: number }[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const h = await handoff(rig, await textOf(rig.engine, n, rep));
      runs.push(h);
      await settle();
      // Another conversation of the same size: the worker has never seen it either.
      live.push(await liveMove(rig, await textOf(rig.engine, n, rep + reps)));
      await settle();
      const t0 = performance.now();
      await (await fetch(`${rawUrl}/up`, { method: 'POST', body: new Uint8Array(h.bytes), headers: { 'content-type': 'application/octet-stream' } })).arrayBuffer();
      bounds.push({ transfer: performance.now() - t0, prefill: await prefillMs(rig.bound, h.prompt, h.sessionId) });
      await settle();
    }
    const pick = (k: keyof Handoff): number => median(runs.map((r) => r[k] as number));
    const transfer = median(bounds.map((b) => b.transfer));
    const prefill = median(bounds.map((b) => b.prefill));
    figures[`handoff_ms_${n}${suffix}`] = compared(median(live.map((l) => l.pauseMs)), 'ms', `handoff_bound_ms_${n}${suffix}`, transfer + prefill);
    figures[`handoff_warm_ms_${n}${suffix}`] = { value: median(live.map((l) => l.warmMs)), unit: 'ms' };
    figures[`handoff_cold_ms_${n}${suffix}`] = compared(pick('totalMs'), 'ms', `handoff_bound_ms_${n}${suffix}`, transfer + prefill);
    figures[`handoff_bound_ms_${n}${suffix}`] = { value: transfer + prefill, unit: 'ms' };
    // The breakdown, each against its part of the bound where it has one.
    const part = (name: string): string => `handoff_${name}_ms${n === SIZES.at(-1) ? '' : `_${n}`}${suffix}`;
    figures[part('checkpoint')] = { value: pick('checkpointMs'), unit: 'ms' };
    figures[part('upload')] = compared(pick('uploadMs'), 'ms', 'raw_loopback_transfer_ms', transfer);
    figures[part('device')] = { value: pick('deviceMs'), unit: 'ms' };
    figures[part('restore')] = { value: pick('restoreMs'), unit: 'ms' };
    figures[part('restore_start')] = { value: pick('startMs'), unit: 'ms' };
    figures[part('restore_fetch')] = { value: pick('fetchMs'), unit: 'ms' };
    figures[part('restore_open')] = { value: pick('openMs'), unit: 'ms' };
    figures[part('first_token')] = compared(pick('firstTokenMs'), 'ms', 'engine_prefill_ms', prefill);
    figures[`handoff_bytes_${n}${suffix}`] = { value: pick('bytes'), unit: 'bytes' };
    figures[`handoff_prompt_tokens_${n}${suffix}`] = { value: pick('promptTokens'), unit: 'tokens' };
  }
}

const CUT_REPLY_TOKENS = 512;

/**
 * Starts `published` (input `resume`) on `host` as the relay would hand it over — the key sealed to the host, the
 * input sealed — and opens its sealed events as they come; `onToken` hears the first token.
 */
async function startRun(host: RunHost, published: PublishResult, onToken?: (id: string) => void): Promise<{ id: string; events: RunEvent[]; first(type: string): Promise<number>; ended: Promise<void> }> {
  const id = randomBytes(16).toString('hex');
  const events: RunEvent[] = [];
  let tokens = 0;
  const waiting = new Map<string, (at: number) => void>();
  const seen = new Map<string, Promise<number>>();
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const first = (type: string): Promise<number> => {
    let p = seen.get(type);
    if (!p) seen.set(type, (p = new Promise((resolve) => waiting.set(type, resolve))));
    return p;
  };
  const reader = await RunEventReader.for(published.key, id);
  const keys = await deriveSessionKeys(published.key);
  let opened: Promise<void> = Promise.resolve();
  // A reply long enough to be cut: events reach the sink sealed (after the generation has gone on a little), so a stop
  // asked for at the first token lands while the model still generates.
  const request = { snapshot: published.snapshot.id, key: await sealKeyTo(host.publicKey, published.key, published.snapshot.id), writeToken: published.writeToken, input: await sealRunInput(keys, published.snapshot.id, { type: 'resume' }), maxTokens: CUT_REPLY_TOKENS };
  host.start(id, request, {
    emit(sealed) {
      opened = opened.then(async () => {
        const event = (await reader.open(sealed)) as RunEvent;
        const at = performance.now();
        events.push(event);
        if (event.type === 'token' && tokens++ === 0) onToken?.(id);
        void first(event.type);
        waiting.get(event.type)?.(at);
        waiting.delete(event.type);
      });
    },
    finish: () => void opened.then(() => end()),
  });
  return { id, events, first, ended };
}

interface KvMove {
  ms: number;
  /** A's hand back: cut, checkpoint (with the KV where saved), publish. */
  handBackMs: number;
  /** What A's hand-back publish uploaded. */
  bytes: number;
  kv: KvEvent | undefined;
}

/** One move of `published` from worker `a` (after it has produced a token) to worker `b`; `b`'s run is handed back after its first token. */
async function kvMove(a: RunHost, b: RunHost, published: PublishResult): Promise<KvMove | undefined> {
  let t0 = 0;
  let handBack: Promise<boolean> | undefined;
  const onA = await startRun(a, published, (id) => {
    t0 = performance.now();
    handBack = a.stop(id);
  });
  await onA.first('token');
  await handBack;
  const handedBack = performance.now();
  const onB = await startRun(b, published);
  const token = await Promise.race([onB.first('token'), onB.ended.then(() => NaN)]);
  await b.stop(onB.id);
  // A's reply ended before the stop reached it (a loaded machine, a tiny model's short greedy reply): no move mid-reply.
  if (Number.isNaN(token)) return undefined;
  const bytes = Number(onA.events.filter((e) => e.type === 'published').at(-1)?.bytes ?? 0);
  return { ms: token - t0, handBackMs: handedBack - t0, bytes, kv: onB.events.find((e) => e.type === 'kv' && e.action !== 'saved') as KvEvent | undefined };
}

async function cloudToCloud(rig: Rig, model: BenchModel, figures: Figures): Promise<void> {
  const { suffix, reps } = model;
  const load = loader(rig.f);
  const relayUrl = (): string => rig.url;
  // A: one engine for both variants (its own work before the move is not measured). B: a cold engine per variant.
  const bKvEngine = await tinyEngine(rig.model);
  const bPrefillEngine = await tinyEngine(rig.model);
  const profile = await measureProfile(bKvEngine, { name: 'B', slots: 1 });
  const hosts = {
    aKv: new RunHost({ engine: rig.engine, keys: await createWorkerKeys(), load, relayUrl }),
    aPrefill: new RunHost({ engine: rig.engine, keys: await createWorkerKeys(), load, relayUrl, kv: { save: false, load: false } }),
    bKv: new RunHost({ engine: bKvEngine, keys: await createWorkerKeys(), load, relayUrl, kv: { prefillTps: profile.prefillTps } }),
    bPrefill: new RunHost({ engine: bPrefillEngine, keys: await createWorkerKeys(), load, relayUrl, kv: { load: false } }),
  };
  try {
    const relay = new RelayHttp({ baseUrl: rig.url });
    for (const n of SIZES) {
      const kv: KvMove[] = [];
      const prefill: KvMove[] = [];
      // Rep -1 warms every host (component compile, first use of a sequence) and is not counted.
      for (let rep = -1; rep < reps; rep++) {
        let k: KvMove | undefined;
        let p: KvMove | undefined;
        // A rep whose reply ended before the stop is done again on another text (a few tries, then the bench fails).
        for (let attempt = 0; !(k && p); attempt++) {
          if (attempt === 5) throw new Error(`worker A's reply ended before the stop in ${attempt} tries at ${n} tokens: no move mid-reply to measure`);
          const cut = await cutOnDevice(rig, await textOf(rig.engine, n, 10 + rep + 100 * attempt));
          // The same session as two snapshots, one per variant.
          const [forKv, forPrefill] = [await publishSession(cut.device, cut.sessionId, relay), await publishSession(cut.device, cut.sessionId, relay)];
          await settle();
          k = await kvMove(hosts.aKv, hosts.bKv, forKv);
          await settle();
          p = await kvMove(hosts.aPrefill, hosts.bPrefill, forPrefill);
        }
        if (k.kv?.action !== 'loaded') throw new Error(`worker B did not load the shipped KV: ${JSON.stringify(k.kv)}`);
        if (p.kv !== undefined && p.kv.action !== 'prefill') throw new Error(`the prefill variant loaded KV: ${JSON.stringify(p.kv)}`);
        if (rep < 0) continue;
        kv.push(k);
        prefill.push(p);
      }
      const pick = (runs: KvMove[], k: 'ms' | 'handBackMs' | 'bytes'): number => median(runs.map((r) => r[k]));
      figures[`handoff_kv_ms_${n}${suffix}`] = compared(pick(kv, 'ms'), 'ms', `handoff_prefill_ms_${n}${suffix}`, pick(prefill, 'ms'));
      figures[`handoff_prefill_ms_${n}${suffix}`] = { value: pick(prefill, 'ms'), unit: 'ms' };
      figures[`handoff_kv_hand_back_ms_${n}${suffix}`] = compared(pick(kv, 'handBackMs'), 'ms', 'hand_back_without_kv_ms', pick(prefill, 'handBackMs'));
      figures[`handoff_kv_bytes_${n}${suffix}`] = compared(pick(kv, 'bytes'), 'bytes', 'hand_back_without_kv_bytes', pick(prefill, 'bytes'));
      figures[`handoff_kv_tokens_${n}${suffix}`] = { value: median(kv.map((r) => r.kv!.tokens)), unit: 'tokens' };
    }
  } finally {
    for (const host of Object.values(hosts)) await host.close();
    await bKvEngine.dispose();
    await bPrefillEngine.dispose();
  }
}

/**
 * BENCH_HANDOFF_ONLY=1 (for iterating on the move): the relay suite measures only the device → cloud move on the tiny
 * model; reported figures come from the full suite.
 */
export const handoffOnly = process.env.BENCH_HANDOFF_ONLY === '1';

export async function handoffFigures(root: string, rawUrl: string, figures: Figures): Promise<void> {
  const f = await fixtures();
  for (const model of handoffOnly ? MODELS.slice(0, 1) : MODELS) {
    const rig = await openRig(root, model, f);
    try {
      await deviceToCloud(rig, rawUrl, model, figures);
      if (!handoffOnly) await cloudToCloud(rig, model, figures);
    } finally {
      await closeRig(rig);
    }
  }
}
