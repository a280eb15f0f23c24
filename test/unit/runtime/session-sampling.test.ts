/**
 * A reopened session samples as its checkpoints recorded, not as the host's settings say now: Settings changed after
 * a session started apply to new sessions. Only the reply length is the host's (not checked here). On node-llama-cpp with the tiny
 * generated model, a sampled session (temperature 0.8, seed 5) reopened with greedy settings continues with the very
 * tokens it would have produced unreopened.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, GenerateRequest } from '../../../src/core/llm/engine.ts';
import { AgentRuntime, type RuntimeEvent } from '../../../src/core/runtime/runtime.ts';
import { createMemoryStore } from '../../../src/core/store/index.ts';
import { agentRig, setupFor, turn, type Fixtures } from '../../support/runtime-agent.ts';

const RECORDED = { maxTokens: 8, temperature: 0.8, seed: 5, topK: 40 };
/** What Settings say after the session started (the scribe asks for 8 tokens a generation: the longer limit changes no reply). */
const SETTINGS_NOW = { maxTokens: 20, temperature: 0, seed: 0 };

/** The engine, with every request it is given. */
function recording(engine: Engine): Engine & { requests: GenerateRequest[] } {
  const requests: GenerateRequest[] = [];
  return { ...engine, info: engine.info, requests, tokenize: (t, o) => engine.tokenize(t, o), detokenize: (ids) => engine.detokenize(ids), generate: (r) => (requests.push(r), engine.generate(r)), dispose: () => Promise.resolve() };
}

const generated = (events: RuntimeEvent[]): number[] => events.flatMap((e) => (e.type === 'generation' ? e.tokens : []));

describe('a reopened session samples as it recorded', () => {
  let f: Fixtures;
  let engine: Engine;
  beforeAll(async () => {
    ({ f, engine } = await agentRig());
  }, 120_000);
  afterAll(() => engine?.dispose());

  it('keeps its temperature, seed and top-k', async () => {
    // Unreopened: the task and a message in one runtime.
    const unmoved = await AgentRuntime.create(createMemoryStore(), setupFor(f, engine, { sampling: RECORDED }), { agent: f.ids.scribe });
    await turn(unmoved, 'ferry river harbour', true);
    const expected = generated((await turn(unmoved, 'tide deck rope')).events);
    await unmoved.dispose();

    // Started the same way, then reopened by a host whose settings are greedy now.
    const store = createMemoryStore();
    const first = await AgentRuntime.create(store, setupFor(f, engine, { sampling: RECORDED }), { agent: f.ids.scribe });
    await turn(first, 'ferry river harbour', true);
    await first.dispose();
    const rec = recording(engine);
    const reopened = await AgentRuntime.open(store, setupFor(f, rec, { sampling: SETTINGS_NOW }), first.session.id);
    const got = generated((await turn(reopened, 'tide deck rope')).events);
    const head = await reopened.session.checkpoint(await reopened.session.head());
    await reopened.dispose();

    expect(rec.requests.length).toBeGreaterThan(0);
    for (const r of rec.requests) expect(r).toMatchObject({ temperature: 0.8, seed: 5, topK: 40 });
    expect(got.length).toBeGreaterThan(0);
    expect(got).toEqual(expected);
    expect(head.llm.sampling).toMatchObject({ temperature: 0.8, seed: 5, topK: 40 });
  }, 180_000);
});
