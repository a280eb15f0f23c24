/**
 * What a stranger and a curious relay get (issue: the relay reads nothing, only a space's members reach it, hostile
 * input cannot exhaust it). Each figure is counted against its goal:
 * - plaintext_canary_hits: after a share, a run on the relay's worker and a move of a session whose messages carry
 *   canaries, the (needle, file) pairs of canary or reply text found in the relay's data folder (SQLite WAL
 *   included). Goal 0.
 * - rogue_node_assignments: sockets naming a real space id with no proof, a forged proof, or a proof replayed from
 *   the owner's own connection; then a run placed on the space's devices. Assignments any rogue got. Goal 0.
 * - owner_refused_among_strangers: while 16 connections from other addresses prove nothing and 16 more rogues name
 *   the space, the owner's device attaches: 1 if it was refused. Goal 0.
 * - decode_bomb_peak_mb: the largest growth of the process's peak resident memory while importing each decoder bomb
 *   (a fresh process each, its heap capped at the goal, the declared payload limit 16 MiB; 0 means no bomb raised the
 *   peak the process had before decoding). Goal ≤ 64 + 2 × 16.
 * - hostile_requests_ok_ratio: the hostile request set (test/support/hostile-requests.ts) answered 4xx JSON with a
 *   code. Goal 1.
 * - upgrade_resume_ok: a session made by the previous build of its agent, after an update that ships only the next
 *   build, continues on its own build on a cloud worker (its third turn in the old build's words), and "upgrade"
 *   replays it into the next build, which goes on. 1 when both hold. Goal 1.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import WebSocket from 'ws';
import { componentId, loadBuiltComponent } from '../server/runtime/node-components.ts';
import { followRun, type StreamSocket } from '../src/core/parallel/index.ts';
import { RelayHttp, SPACE_LIMITS, createSpaceSecret, publishSession, spaceCredentials, startSealedRun, toBase64Url, type SpaceMembership } from '../src/core/protocol/index.ts';
import { AgentRuntime, type RuntimeSetup } from '../src/core/runtime/runtime.ts';
import { upgradeSession } from '../src/core/runtime/upgrade.ts';
import { createMemoryStore } from '../src/core/store/index.ts';
import { plaintextHits, shareRunMove } from '../test/support/canary.ts';
import { decodeBombs, type BombOutcome } from '../test/support/decode-bombs.ts';
import { hostileRequests, sendHostile } from '../test/support/hostile-requests.ts';
import { fixtures, tinyEngine, tinyModelFile, turn } from '../test/support/runtime-agent.ts';
import { builtFixture } from '../test/support/runtime-fixtures.ts';
import { FakeWorker, runRequest } from '../test/unit/api/fake-worker.ts';
import { makeTempDirs, startTestRelay, writeSession } from '../test/unit/api/relay-harness.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const root = path.resolve(import.meta.dirname, '..');
const BOMB_LIMIT_MIB = 16;
const GOAL_MB = 64 + 2 * BOMB_LIMIT_MIB;

async function canaryFigure(figures: Figures): Promise<void> {
  const [f, dirs, model] = await Promise.all([fixtures(), makeTempDirs(), tinyModelFile()]);
  const engine = await tinyEngine(model);
  const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: Object.values(f.dirs) });
  try {
    const needles = await shareRunMove(relay.url, 'bench-5520', f, engine);
    figures.plaintext_canary_hits = compared((await plaintextHits(dirs.dataDir, needles)).length, 'hits', 'goal_hits', 0);
  } finally {
    await relay.close();
    await engine.dispose();
    await dirs.cleanup();
  }
}

async function memberFigures(figures: Figures): Promise<void> {
  const dirs = await makeTempDirs();
  // No worker of its own: the space's devices are the only nodes.
  const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, embeddedWorker: false });
  const sockets: FakeWorker[] = [];
  try {
    const owner = await spaceCredentials(createSpaceSecret());
    const phone = await FakeWorker.device(relay.url, 'owner-phone', owner);
    sockets.push(phone);
    // A proof the owner's phone made on its own connection (another nonce, another worker key): replayed.
    const replayed = await owner.prove(toBase64Url(new Uint8Array(32).fill(7)), phone.keys.publicKey);
    const forged = (i: number) => async (): Promise<SpaceMembership> => ({ id: owner.id, key: owner.key, proof: toBase64Url(new Uint8Array(64).fill(i)) });
    const attacks = [
      ...Array.from({ length: 6 }, (_, i) => FakeWorker.device(relay.url, `forged-${i}`, forged(i))),
      ...Array.from({ length: 6 }, (_, i) => FakeWorker.device(relay.url, `replayed-${i}`, async () => replayed)),
      ...Array.from({ length: 6 }, (_, i) => FakeWorker.device(relay.url, `unproven-${i}`, async () => undefined)),
    ];
    const rogues = await Promise.all(attacks);
    sockets.push(...rogues);
    const store = createMemoryStore();
    const { session } = await writeSession(store, 1);
    const published = await publishSession(store, session.id, new RelayHttp({ baseUrl: relay.url }));
    const res = await runRequest(relay.url, published, { type: 'user', text: 'to my devices' }, { space: owner.id, cloud: false });
    if (res.status !== 202) throw new Error(`the owner's run was refused: HTTP ${res.status}`);
    await phone.assigned();
    figures.rogue_node_assignments = compared(rogues.filter((r) => r.received.some((m) => m.type === 'assign')).length, 'assignments', 'goal_assignments', 0);

    // Strangers holding every place they can while the owner's laptop attaches: 16 silent sockets from two other
    // addresses (each at its cap of unproven connections), and as many more rogues naming the space.
    const silent = ['127.0.0.2', '127.0.0.3'].flatMap((address) => Array.from({ length: SPACE_LIMITS.nodesPerSpace / 2 }, () => FakeWorker.silent(relay.url, address)));
    sockets.push(...silent);
    await Promise.all(silent.map((s) => s.next((m) => m.type === 'challenge' || m.type === 'refused')));
    sockets.push(...(await Promise.all(Array.from({ length: SPACE_LIMITS.nodesPerSpace }, (_, i) => FakeWorker.device(relay.url, `crowd-${i}`, forged(100 + i))))));
    const laptop = await FakeWorker.device(relay.url, 'owner-laptop', owner);
    sockets.push(laptop);
    figures.owner_refused_among_strangers = compared(laptop.refused ? 1 : 0, 'refusals', 'goal_refusals', 0);
  } finally {
    for (const s of sockets) s.close();
    await relay.close();
    await dirs.cleanup();
  }
}

async function bombFigure(figures: Figures): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-bombs-'));
  try {
    let peak = 0;
    for (const bomb of await decodeBombs()) {
      const file = path.join(dir, `${bomb.name}.ferry`);
      await writeFile(file, bomb.file);
      // Its heap capped at the goal, as the decode-bombs test does: a decoder that allocates first dies here.
      const { stdout } = await promisify(execFile)(process.execPath, [`--max-old-space-size=${GOAL_MB}`, '--import', 'tsx', 'test/support/decode-bombs.ts', file, String(BOMB_LIMIT_MIB)], { cwd: root });
      const outcome = JSON.parse(stdout.trim().split('\n').at(-1)!) as BombOutcome;
      if (outcome.code === undefined) throw new Error(`bomb ${bomb.name} decoded without an error`);
      peak = Math.max(peak, outcome.peakMb);
    }
    figures.decode_bomb_peak_mb = compared(peak, 'MB', 'goal_mb', GOAL_MB);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function hostileFigure(figures: Figures): Promise<void> {
  const dirs = await makeTempDirs();
  const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model: await tinyModelFile(), embeddedWorker: false });
  try {
    const model = ((await (await fetch(`${relay.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    const answers = await sendHostile(relay.url, hostileRequests(model));
    figures.hostile_requests_ok_ratio = compared(answers.filter((a) => a.ok).length / answers.length, 'ratio', 'goal_ratio', 1);
  } finally {
    await relay.close();
    await dirs.cleanup();
  }
}

async function upgradeFigure(figures: Figures): Promise<void> {
  const [f, nextDir, dirs, model] = await Promise.all([fixtures(), builtFixture('scribe-next'), makeTempDirs(), tinyModelFile()]);
  const nextId = await componentId(nextDir);
  const engine = await tinyEngine(model);
  const ships = (builds: Record<string, string>): RuntimeSetup['load'] => (id) => (builds[id] ? loadBuiltComponent(builds[id]) : Promise.reject(new Error(`no build ${id}`)));
  const sampling = { maxTokens: 8, temperature: 0, seed: 0 };
  // The cloud worker ships only the next build of the agent.
  const relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, model, componentDirs: [nextDir, f.dirs.tally] });
  try {
    const store = createMemoryStore();
    const runtime = await AgentRuntime.create(store, { engine, sampling, load: ships({ [f.ids.scribe]: f.dirs.scribe, [f.ids.tally]: f.dirs.tally }) }, { agent: f.ids.scribe, tools: [f.ids.tally] });
    await turn(runtime, 'the first message', true);
    await turn(runtime, 'the second message');
    await runtime.dispose();
    const id = runtime.session.id;

    const http = new RelayHttp({ baseUrl: relay.url });
    const published = await publishSession(store, id, http);
    const run = await startSealedRun(http, { snapshot: published.snapshot.id, key: published.key, writeToken: published.writeToken, input: { type: 'user', text: 'in the cloud' } });
    const replies: string[] = [];
    await followRun(http, run.id, (m) => m.event.type === 'reply' && replies.push(String(m.event.text)), { key: published.key, open: (url, protocols) => new WebSocket(url, protocols) as unknown as StreamSocket });
    const cloud = replies.length === 1 && replies[0]!.startsWith('turn 3: ');

    const updated = { engine, sampling, load: ships({ [nextId]: nextDir, [f.ids.tally]: f.dirs.tally }) };
    const upgraded = await upgradeSession(store, id, updated, { agent: nextId, tools: [f.ids.tally] });
    const next = await AgentRuntime.open(store, updated, upgraded.sessionId);
    const after = (await turn(next, 'with the new build')).replies;
    await next.dispose();
    const here = after.length === 1 && after[0]!.startsWith('[next] turn 3: ');
    figures.upgrade_resume_ok = compared(cloud && here ? 1 : 0, 'ok', 'goal_ok', 1);
  } finally {
    await relay.close();
    await engine.dispose();
    await dirs.cleanup();
  }
}

async function run(): Promise<Figures> {
  const figures: Figures = {};
  await canaryFigure(figures);
  await memberFigures(figures);
  await bombFigure(figures);
  await hostileFigure(figures);
  await upgradeFigure(figures);
  return figures;
}

export const securitySuite: Suite = {
  name: 'security',
  description: 'what a stranger and a curious relay get: plaintext_canary_hits, rogue_node_assignments, owner_refused_among_strangers, decode_bomb_peak_mb, hostile_requests_ok_ratio, upgrade_resume_ok',
  run,
};
