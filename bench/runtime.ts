/**
 * Agent runtime benchmarks (issue 4): a real agent session — the `scribe` agent and `tally` tool (QuickJS
 * components) on node-llama-cpp with a tiny generated model — checkpointed after every step as keyframe + XOR
 * deltas (src/core/runtime/checkpoint.ts), against compressing and storing the whole memory images each step.
 * Restore (read the chain from the session, decode, fresh instances, write the images) against a plain fresh
 * instantiate, in Node and in a Chromium worker; and the loop's own overhead per step.
 * checkpoint_ms is the whole per-step checkpoint (capture, encode, session append into a memory store);
 * checkpoint_capture_ms its state part alone (page diff + delta encoding); checkpoint_bytes_mean counts keyframes.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { zlibSync } from 'fflate';
import { componentFiles } from '../server/runtime/node-tools.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { Checkpointer, instanceState, readChain, type StatefulComponent } from '../src/core/runtime/checkpoint.ts';
import { AgentLoop, agentOf, inProcessTool, instantiate, type ComponentInstance, type LoadedComponent } from '../src/core/runtime/index.ts';
import { decodeChain } from '../src/core/runtime/state-codec.ts';
import { Session } from '../src/core/session/index.ts';
import { createMemoryStore, objectId } from '../src/core/store/index.ts';
import { openChromiumPage } from '../test/support/chromium-page.ts';
import { fixtures, loader, tinyEngine, tinyModelFile } from '../test/support/runtime-agent.ts';
import { compared, type Figures, type Suite } from './lib.ts';

const TURNS = 40;
const WORDS = ['hello world', 'tell me a story', 'once upon a time', 'the agent and the model', 'a little browser', 'the cloud device'];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** The baseline: every memory of every component copied whole, zlib-compressed (fflate, level 1) and hashed for a store. */
async function fullImages(instances: readonly ComponentInstance[]): Promise<number> {
  let bytes = 0;
  for (const instance of instances) {
    for (const memory of instance.capture().memories) {
      const whole = new Uint8Array(memory.byteLength);
      for (const [i, page] of memory.pages) whole.set(page, i * page.length);
      const packed = zlibSync(whole, { level: 1 });
      await objectId(packed);
      bytes += packed.length;
    }
  }
  return bytes;
}

interface BrowserRestore {
  instantiateMs: number;
  restoreMs: number;
}

export const runtimeSuite: Suite = {
  name: 'runtime',
  description: `scribe agent + tally tool (QuickJS) on a tiny model, ${TURNS} user turns: per-step checkpoint vs whole images; restore vs instantiate (Node, Chromium worker)`,
  async run(): Promise<Figures> {
    const f = await fixtures();
    const load = loader(f);
    const [scribe, tally] = await Promise.all([load(f.ids.scribe), load(f.ids.tally)]);
    let engine: Engine | undefined;
    try {
      engine = await tinyEngine(await tinyModelFile());
      const agentInstance = await instantiate(scribe, {});
      const toolInstance = await instantiate(tally, {});
      // Each capture is timed on its own too: the state work (diff + encode) apart from the session append.
      let captureMs = 0;
      const timed = (c: StatefulComponent): StatefulComponent => ({
        ...c,
        capture: async (kind, chain, seq) => {
          const t0 = performance.now();
          const blob = await c.capture(kind, chain, seq);
          captureMs += performance.now() - t0;
          return blob;
        },
      });
      const components: StatefulComponent[] = [timed(instanceState('agent', agentInstance)), timed(instanceState('tool.tally', toolInstance))];
      const session = await Session.create(createMemoryStore(), {
        llm: { model: engine.info.model.slice(0, 256), tokenizerId: engine.info.tokenizerId.slice(0, 256), sampling: { temperature: 0, topP: 1, topK: 0, seed: 0, maxTokens: 8 } },
      });
      const checkpointer = new Checkpointer(session, components);
      const checkpointMs: number[] = [];
      const stateBytes: number[] = [];
      const fullMs: number[] = [];
      const fullBytes: number[] = [];
      const overheadMs: number[] = [];
      const stepCaptureMs: number[] = [];
      let keyframes = 0;
      const loop = new AgentLoop({
        agent: agentOf(agentInstance),
        tools: [inProcessTool(toolInstance)],
        engine,
        sampling: { maxTokens: 8, temperature: 0, seed: 0 },
        afterStep: async (record) => {
          let t0 = performance.now();
          captureMs = 0;
          const result = await checkpointer.append({ events: record.events, host: { loop: record.state, agent: scribe.id, tools: [{ name: 'tool.tally', component: tally.id }] } });
          const ms = performance.now() - t0;
          keyframes += result.keyframes;
          // The first checkpoint of the session is all keyframes: that is the baseline's cost, not a step's.
          if (record.step > 1) {
            checkpointMs.push(ms);
            stepCaptureMs.push(captureMs);
            stateBytes.push(result.stateBytes);
          }
          const { totalMs, modelMs, toolMs, agentMs } = record.timing;
          overheadMs.push(totalMs - modelMs - toolMs - agentMs);
          t0 = performance.now();
          fullBytes.push(await fullImages([agentInstance, toolInstance]));
          fullMs.push(performance.now() - t0);
          return result.id;
        },
      });
      for (let i = 0; i < TURNS; i++) {
        const text = `${WORDS[i % WORDS.length]} ${i}`;
        for await (const event of loop.run(i === 0 ? { type: 'start', task: text } : { type: 'user', text })) void event;
      }
      const steps = loop.state.steps;
      const head = await session.head();

      // Restore = read the chains from the session, decode, fresh instances, write the images; measured
      // interleaved with plain fresh instantiates so both see the same heap and GC pressure.
      const instantiateMs: number[] = [];
      const restoreMs: number[] = [];
      for (let i = 0; i < 25; i++) {
        let t0 = performance.now();
        await instantiate(scribe, {});
        await instantiate(tally, {});
        instantiateMs.push(performance.now() - t0);
        t0 = performance.now();
        const fresh = await Session.open(session.store, session.id);
        for (const [component, name] of [[scribe, 'agent'], [tally, 'tool.tally']] as [LoadedComponent, string][]) {
          const instance = await instantiate(component, {});
          instance.restore(decodeChain(await readChain(fresh, head, name), instance.initial));
        }
        restoreMs.push(performance.now() - t0);
      }

      const browser = await browserRestore(f.dirs.scribe, f.dirs.tally, [await readChain(session, head, 'agent'), await readChain(session, head, 'tool.tally')]);
      const memoryBytes = [agentInstance, toolInstance].reduce((n, inst) => n + inst.memoryBytes(), 0);
      const fullP50 = median(fullBytes);
      return {
        checkpoint_ms: compared(median(checkpointMs), 'ms', 'full_image_ms', median(fullMs)),
        full_image_ms: { value: median(fullMs), unit: 'ms' },
        checkpoint_capture_ms: compared(median(stepCaptureMs), 'ms', 'full_image_ms', median(fullMs)),
        checkpoint_bytes: compared(median(stateBytes), 'bytes', 'full_image_bytes', fullP50),
        checkpoint_bytes_mean: compared(mean(stateBytes), 'bytes', 'full_image_bytes', fullP50),
        full_image_bytes: { value: fullP50, unit: 'bytes' },
        keyframes: { value: keyframes, unit: 'count' },
        steps: { value: steps, unit: 'count' },
        memory_bytes: { value: memoryBytes, unit: 'bytes' },
        restore_ms: compared(median(restoreMs), 'ms', 'instantiate_ms', median(instantiateMs)),
        instantiate_ms: { value: median(instantiateMs), unit: 'ms' },
        restore_ms_browser: compared(browser.restoreMs, 'ms', 'instantiate_ms_browser', browser.instantiateMs),
        instantiate_ms_browser: { value: browser.instantiateMs, unit: 'ms' },
        step_overhead_ms: { value: median(overheadMs), unit: 'ms' },
      };
    } finally {
      await engine?.dispose();
    }
  },
};

/** Runs bench/runtime-browser in Chromium: the same restore (from the same chains) in a Web Worker. */
async function browserRestore(agentDir: string, toolDir: string, chains: Uint8Array[][]): Promise<BrowserRestore> {
  const chrome = await openChromiumPage(path.join(path.dirname(fileURLToPath(import.meta.url)), 'runtime-browser'));
  try {
    await chrome.load();
    const pack = async (dir: string) => ({
      id: await objectId(new Uint8Array(await readFile(path.join(dir, 'manifest.json')))),
      files: Object.fromEntries(Object.entries(await componentFiles(dir)).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    });
    const input = { components: [await pack(agentDir), await pack(toolDir)], chains: chains.map((c) => c.map((b) => Buffer.from(b).toString('base64'))) };
    return await chrome.page.evaluate((i) => (globalThis as unknown as { ferryRuntimeBench(i: unknown): Promise<BrowserRestore> }).ferryRuntimeBench(i), input);
  } finally {
    await chrome.close();
  }
}
