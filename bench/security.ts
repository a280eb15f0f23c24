/**
 * What a stranger and a curious relay get (issue: the relay reads nothing, only a space's members reach it, hostile
 * input cannot exhaust it). Each figure is counted against its goal:
 * - plaintext_canary_hits: after a share, a run on the relay's worker and a move of a session whose messages carry
 *   canaries, the (needle, file) pairs of canary or reply text found in the relay's data folder (SQLite WAL
 *   included). Goal 0.
 * - rogue_node_assignments: sockets naming a real space id with no proof, a forged proof, or a proof replayed from
 *   the owner's own connection; then a run placed on the space's devices. Assignments any rogue got. Goal 0.
 * - owner_refused_among_strangers: 16 connections that prove nothing plus the rogues above, then the owner's device
 *   attaches: 1 if it was refused. Goal 0.
 * - decode_bomb_peak_mb: the largest growth of peak memory importing each decoder bomb (a fresh process each, the
 *   declared payload limit 16 MiB). Goal ≤ 64 + 2 × 16.
 * - hostile_requests_ok_ratio: the hostile request set (test/support/hostile-requests.ts) answered 4xx JSON with a
 *   code. Goal 1.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { RelayHttp, SPACE_LIMITS, createSpaceSecret, publishSession, spaceCredentials, toBase64Url, type SpaceMembership } from '../src/core/protocol/index.ts';
import { createMemoryStore } from '../src/core/store/index.ts';
import { plaintextHits, shareRunMove } from '../test/support/canary.ts';
import { decodeBombs, type BombOutcome } from '../test/support/decode-bombs.ts';
import { hostileRequests, sendHostile } from '../test/support/hostile-requests.ts';
import { fixtures, tinyEngine, tinyModelFile } from '../test/support/runtime-agent.ts';
import { FakeWorker, runRequest } from '../test/unit/api/fake-worker.ts';
import { makeTempDirs, startTestRelay, writeSession } from '../test/unit/api/relay-harness.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const root = path.resolve(import.meta.dirname, '..');
const BOMB_LIMIT_MIB = 16;

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

    // Strangers holding every place they can: silent sockets up to the per-address cap, and more rogues naming the space.
    const silent = Array.from({ length: SPACE_LIMITS.nodesPerSpace }, () => FakeWorker.silent(relay.url));
    sockets.push(...silent);
    sockets.push(...(await Promise.all(Array.from({ length: SPACE_LIMITS.nodesPerSpace }, (_, i) => FakeWorker.device(relay.url, `crowd-${i}`, forged(100 + i))))));
    await Promise.all(silent.map((s) => s.closed));
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
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'test/support/decode-bombs.ts', file, String(BOMB_LIMIT_MIB)], { cwd: root });
      const outcome = JSON.parse(stdout.trim().split('\n').at(-1)!) as BombOutcome;
      if (outcome.code === undefined) throw new Error(`bomb ${bomb.name} decoded without an error`);
      peak = Math.max(peak, outcome.peakMb);
    }
    figures.decode_bomb_peak_mb = compared(peak, 'MB', 'goal_mb', 64 + 2 * BOMB_LIMIT_MIB);
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

async function run(): Promise<Figures> {
  const figures: Figures = {};
  await canaryFigure(figures);
  await memberFigures(figures);
  await bombFigure(figures);
  await hostileFigure(figures);
  return figures;
}

export const securitySuite: Suite = {
  name: 'security',
  description: 'what a stranger and a curious relay get: plaintext_canary_hits, rogue_node_assignments, owner_refused_among_strangers, decode_bomb_peak_mb, hostile_requests_ok_ratio',
  run,
};
