/**
 * Edge drafts, an attached worker verifies: a relay started without a model, a `ferry worker` process on the
 * generated model attached to it. Devices' verify sessions go over the relay's verify socket to that worker, which
 * verifies with its own engine; the output equals the worker model's greedy output. So too through a relay whose
 * own model is another one. The worker's profile says it verifies (placement reads it); when the worker stalls
 * mid-round (attached, but not answering) the relay answers the round with verify/timeout and the generation goes on
 * in a new session, and when the worker dies mid-round the device's pending round gets a typed error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import WebSocket from 'ws';
import * as v from 'valibot';
import { generateTinyModel } from '../../src/core/llm/gguf/index.ts';
import { DraftLength, generateAll, speculativeDecode } from '../../src/core/llm/index.ts';
import { speculativeRun } from '../../src/core/host/index.ts';
import { relayProfiles } from '../../src/core/placement/index.ts';
import { VERIFY_TIMEOUT, VerifyConnection, WorkerListSchema, verifyPath, workerPaths, type VerifySocket, type VerifyTimeout } from '../../src/core/protocol/index.ts';
import type { NodeLlamaEngine } from '../../server/llm/node-llama-engine.ts';
import { startWorkerProcess, type WorkerProcess } from '../support/relay-process.ts';
import { makeTempDirs, startTestRelay, type TestRelay } from './api/relay-harness.ts';
import { cpuEngine } from './llm/fixtures.ts';

const componentsDir = path.join(path.resolve(import.meta.dirname, '..', '..'), 'components', 'dist');
const TOKEN = 'v'.repeat(43);
const PROMPTS = ['Hello there, how are you', 'The quick brown fox', 'Write a story about the sea', 'Once upon a time'];
const MAX = 24;

let dirs: Awaited<ReturnType<typeof makeTempDirs>>;
let relay: TestRelay;
let worker: WorkerProcess;
/** A relay serving another model of its own, with a worker on the target model attached. */
let other: { relay: TestRelay; worker: WorkerProcess };
/** The worker's model, loaded here too: its greedy output is what the speculative runs must give. */
let reference: NodeLlamaEngine;
let draft: NodeLlamaEngine;
let connection: VerifyConnection;
/** The relay's limit on a round's answer, read as each round is sent: one test shortens it for a round. */
const limit: { -readonly [K in keyof VerifyTimeout]: number } = { ...VERIFY_TIMEOUT };

const openSocket = (url: string): VerifySocket => new WebSocket(url) as unknown as VerifySocket;
const promptOf = async (text: string): Promise<number[]> => [1, ...(await reference.tokenize(text))];

beforeAll(async () => {
  dirs = await makeTempDirs();
  const file = (name: string) => path.join(dirs.root, name);
  await Promise.all([
    writeFile(file('target.gguf'), generateTinyModel()),
    writeFile(file('draft.gguf'), generateTinyModel({ type: 'q4_0' })),
    writeFile(file('other.gguf'), generateTinyModel({ seed: 2 })),
  ]);
  // No model: every verification is the attached worker's.
  const otherRelay = startTestRelay({ staticDir: dirs.staticDir, dataDir: path.join(dirs.root, 'other'), workerToken: TOKEN, model: file('other.gguf'), embeddedWorker: false, componentDirs: [componentsDir] });
  relay = await startTestRelay({ staticDir: dirs.staticDir, dataDir: dirs.dataDir, workerToken: TOKEN, componentDirs: [componentsDir], verifyTimeout: limit });
  const attach = (to: TestRelay, name: string) => startWorkerProcess({ relayUrl: to.url, token: TOKEN, name, model: file('target.gguf'), dataDir: path.join(dirs.root, name), componentsDir, args: ['--slots', '4'] });
  const otherWorker = otherRelay.then((r) => attach(r, 'other-verifier'));
  [worker, reference, draft] = await Promise.all([attach(relay, 'verifier'), cpuEngine(file('target.gguf'), { slots: 1 }), cpuEngine(file('draft.gguf'), { slots: 4 })]);
  other = { relay: await otherRelay, worker: await otherWorker };
  connection = await VerifyConnection.connect(`${relay.url.replace(/^http/, 'ws')}${verifyPath}`, openSocket);
}, 180_000);

afterAll(async () => {
  connection?.close();
  // A test that failed with the worker frozen would leave it deaf to the stop.
  worker?.child.kill('SIGCONT');
  await Promise.all([worker?.stop(), other?.worker.stop()]);
  await Promise.all([reference?.dispose(), draft?.dispose()]);
  await Promise.all([relay?.close(), other?.relay.close()]);
  await dirs?.cleanup();
});

/** The worker model's greedy tokens for each prompt, as its engine generates them alone. */
let greedy: Promise<number[][]> | undefined;
const expected = (): Promise<number[][]> => (greedy ??= (async () => {
  const out = [];
  for (const text of PROMPTS) out.push([...(await generateAll(reference, { prompt: { tokens: await promptOf(text) }, maxTokens: MAX })).tokens]);
  return out;
})());

async function decode(via: VerifyConnection, text: string, slot: string): Promise<{ tokens: readonly number[]; accepted: number }> {
  const prompt = await promptOf(text);
  const verifier = await via.session(prompt, { model: reference.info.model });
  const result = await speculativeDecode({ draft, verifier, prompt, maxTokens: MAX, slot, draftLength: new DraftLength({ fixed: 4 }) });
  verifier.close();
  return result;
}

describe('edge drafts, an attached worker verifies', () => {
  it('the worker says it verifies, and placement sees a node that verifies', async () => {
    const list = v.parse(WorkerListSchema, await (await fetch(relay.url + workerPaths.list)).json());
    expect(list.workers.map((w) => [w.profile.name, w.profile.model, w.profile.verifies])).toEqual([['verifier', reference.info.model, true]]);
    expect(relayProfiles(list, { rttMs: 20, bandwidthBps: 1e7 }, Date.now()).map((p) => p.verifies)).toEqual([true]);
  });

  it("sessions through a relay without a model give the worker model's greedy tokens, several at once", async () => {
    const results = await Promise.all(PROMPTS.map((text, i) => decode(connection, text, `device-${i}`)));
    expect(results.map((r) => r.tokens)).toEqual(await expected());
    // The draft agreed with the worker's model some of the time: rounds accepted drafted ids.
    expect(results.reduce((n, r) => n + r.accepted, 0)).toBeGreaterThan(0);
  });

  it('a relay whose own model is another routes sessions for the worker\'s model to the worker', async () => {
    const via = await VerifyConnection.connect(`${other.relay.url.replace(/^http/, 'ws')}${verifyPath}`, openSocket);
    try {
      const results = [];
      for (const text of PROMPTS.slice(0, 2)) results.push(await decode(via, text, 'other'));
      expect(results.map((r) => r.tokens)).toEqual((await expected()).slice(0, 2));
    } finally {
      via.close();
    }
  });

  it('a session for a model no worker serves is refused with verify/no-engine', async () => {
    await expect(connection.session([1, 300], { model: 'f'.repeat(64) })).rejects.toMatchObject({ code: 'verify/no-engine' });
  });

  it('a worker that stays attached but stops answering: the relay answers its round with verify/timeout, and the generation goes on in a new session', async () => {
    const prompt = await promptOf(PROMPTS[1]!);
    const model = reference.info.model;
    const first = await connection.session(prompt, { model });
    const causes: unknown[] = [];
    let rounds = 0;
    const result = await speculativeDecode({
      draft,
      // The third round goes to a frozen worker (its link stays open), under a short limit.
      verifier: {
        verify: (ids, signal) => {
          if (++rounds === 3) {
            worker.child.kill('SIGSTOP');
            Object.assign(limit, { baseMs: 50, perPositionMs: 0 });
          }
          return first.verify(ids, signal);
        },
      },
      resume: (context, cause) => {
        causes.push(cause);
        Object.assign(limit, VERIFY_TIMEOUT);
        worker.child.kill('SIGCONT');
        first.close();
        return connection.session(context, { model });
      },
      prompt,
      maxTokens: MAX,
      slot: 'stalled',
      draftLength: new DraftLength({ fixed: 4 }),
    });
    expect(causes).toMatchObject([{ code: 'verify/timeout' }]);
    expect(rounds).toBe(3);
    expect(result.tokens).toEqual((await expected())[1]);
    // The worker's late answer to the abandoned round was dropped; the socket goes on serving sessions.
    expect((await decode(connection, PROMPTS[2]!, 'after-stall')).tokens).toEqual((await expected())[2]);
  });

  it('a relay that goes silent mid-round: the device gives up on it with its own limit, and the generation goes on over a new socket', async () => {
    const prompt = await promptOf(PROMPTS[3]!);
    // The device's idea of the relay's limit, read as each call is sent: short for the third round only.
    const device: { -readonly [K in keyof VerifyTimeout]: number } = { ...VERIFY_TIMEOUT };
    let sockets = 0;
    let rounds = 0;
    const open = (url: string): VerifySocket => {
      const ws = new WebSocket(url);
      const first = ++sockets === 1;
      if (!first) {
        Object.assign(device, VERIFY_TIMEOUT);
        worker.child.kill('SIGCONT');
      }
      return {
        get readyState() {
          return ws.readyState;
        },
        send(data) {
          // The relay forwards the third round to a frozen worker, under its default limit: to the device, silence. (A
          // call's limit is read before it is sent: the second round's send shortens the third's.)
          if (first && (JSON.parse(data) as { type: string }).type === 'verify') {
            if (++rounds === 2) Object.assign(device, { baseMs: 50, perPositionMs: 0 });
            if (rounds === 3) worker.child.kill('SIGSTOP');
          }
          ws.send(data);
        },
        close: (code, reason) => ws.close(code, reason),
        addEventListener: (type: 'open' | 'close' | 'error' | 'message', listener: (event: { data: unknown }) => void) => ws.addEventListener(type, listener as () => void),
      } as VerifySocket;
    };
    const run = speculativeRun(draft, { verifyUrl: `${relay.url.replace(/^http/, 'ws')}${verifyPath}`, model: reference.info.model, draftLength: { fixed: 4 }, timeout: device }, undefined, open);
    try {
      const done = await generateAll(run.engine, { prompt: { tokens: prompt }, maxTokens: MAX, temperature: 0, slot: 'silent' });
      expect(done.tokens).toEqual((await expected())[3]);
      expect([rounds, sockets]).toEqual([3, 2]);
    } finally {
      run.close();
    }
  });

  it("a worker that dies with a round in flight: the device's round fails with verify/connection-lost, not a hang", async () => {
    const prompt = await promptOf(PROMPTS[0]!);
    const verifier = await connection.session(prompt, { model: reference.info.model });
    expect(await verifier.verify([])).toEqual({ accepted: 0, next: expect.any(Number) });
    // Frozen, the worker cannot answer the next round; then it dies.
    worker.child.kill('SIGSTOP');
    const round = verifier.verify([300, 301]).then(() => 'answered', (error: unknown) => error);
    worker.child.kill('SIGKILL');
    expect(await round).toMatchObject({ code: 'verify/connection-lost' });
    await expect(verifier.verify([])).rejects.toMatchObject({ code: 'verify/connection-lost' });
    // The socket stays usable: with no worker left, a new session is refused, not left waiting.
    await expect(connection.session(prompt)).rejects.toMatchObject({ code: 'verify/no-engine' });
  });
});
