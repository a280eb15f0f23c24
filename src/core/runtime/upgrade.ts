/**
 * "Upgrade": a session made by one build of its components, replayed into another (DESIGN §4). A session keeps
 * running the build it started with (builds.ts); upgrading makes a new session that runs the new builds, by feeding
 * them the old session's recorded events in order — its messages as inputs, its generations as the model's answers
 * (a replay engine hands them back instead of generating; the real engine only tokenizes), its tool calls run for
 * real by the new tools so their state is rebuilt. The new build must act as the old one did: asking for a
 * generation the session does not have, for another tool call than the one recorded, or a tool call failing that
 * succeeded (or the reverse) is a divergence, and nothing is written. The old session stays as it was (readable, and runnable on its own build).
 *
 * The current branch is replayed; a session whose steps ran forked children elsewhere cannot be replayed (their
 * answers are not in the parent's events) and diverges.
 */
import { FerryError } from '../errors.ts';
import type { Engine, FinishReason, GenerateEvent, GenerateRequest, GenerationStats } from '../llm/engine.ts';
import { Session, newSessionId, type SessionEvent } from '../session/index.ts';
import { storeTarget, syncSession } from '../snapshot/index.ts';
import { createMemoryStore, type Store } from '../store/index.ts';
import type { RunInput } from './loop.ts';
import { AgentRuntime, type RuntimeEvent, type RuntimeSetup } from './runtime.ts';

export interface UpgradeTarget {
  /** The new build of the agent, and of each tool (in the session's order). */
  agent: string;
  tools: readonly string[];
}

export interface UpgradeResult {
  /** The upgraded session (a new one, in the same store). */
  sessionId: string;
  /** Messages replayed, and steps the new build took for them. */
  inputs: number;
  steps: number;
}

type Generation = Extract<SessionEvent, { type: 'generation' }>;
type ToolCall = Extract<SessionEvent, { type: 'tool-call' }>;
type ToolResult = Extract<SessionEvent, { type: 'tool-result' }>;

const diverged = (why: string): FerryError =>
  new FerryError('runtime/upgrade-diverged', `The new build does not act as the session's build did (${why}), so the session cannot be replayed into it; it stays on its own build, which it keeps running.`);

const NO_STATS: GenerationStats = { promptTokens: 0, cachedTokens: 0, completionTokens: 0, prefillMs: 0, decodeMs: 0, ttftMs: 0, prefillTps: 0, decodeTps: 0 };

const finishOf = (g: Generation): FinishReason => (g.finish === 'abort' ? 'cancelled' : g.finish === 'length' ? 'length' : 'stop');

/** An engine that answers each generation with the next recorded one; tokenizing is the real engine's. */
function replayEngine(real: Engine, generations: Generation[]): Engine {
  return {
    info: real.info,
    tokenize: (text, options) => real.tokenize(text, options),
    detokenize: (ids) => real.detokenize(ids),
    async *generate(_request: GenerateRequest): AsyncGenerator<GenerateEvent> {
      const next = generations.shift();
      if (!next) throw diverged('it asks the model for more than the session recorded');
      yield { type: 'done', finishReason: finishOf(next), text: next.text, tokens: next.tokens, stats: NO_STATS };
    },
    // The real engine is the caller's: the replay borrows it and leaves it as it found it.
    dispose: async () => undefined,
  };
}

/** Replays session `sessionId` (its current branch) from `store` into the builds `to`; the upgraded session is added to `store`. */
export async function upgradeSession(store: Store, sessionId: string, setup: RuntimeSetup, to: UpgradeTarget): Promise<UpgradeResult> {
  const session = await Session.open(store, sessionId);
  const history = (await session.history()).reverse();
  const events = history.flatMap((h) => h.checkpoint.events);
  const inputs = events.filter((e) => e.type === 'user').map((e) => e.text);
  const generations = events.filter((e): e is Generation => e.type === 'generation');
  const calls = events.filter((e): e is ToolCall => e.type === 'tool-call');
  const results = events.filter((e): e is ToolResult => e.type === 'tool-result');
  const recorded = history.at(-1)!.checkpoint.llm.sampling;

  // Replayed into a store of its own: nothing reaches `store` unless the whole replay holds.
  const scratch = createMemoryStore();
  const replay: RuntimeSetup = {
    engine: replayEngine(setup.engine, generations),
    load: setup.load,
    sampling: recorded,
    ...(setup.grants ? { grants: setup.grants } : {}),
    ...(setup.startTool ? { startTool: setup.startTool } : {}),
  };
  const upgradedId = newSessionId();
  const runtime = await AgentRuntime.create(scratch, replay, { agent: to.agent, tools: to.tools, sessionId: upgradedId });
  let steps = 0;
  const drive = async (input: RunInput): Promise<void> => {
    for await (const event of runtime.run(input)) steps += check(event, calls, results);
  };
  try {
    for (const [i, text] of inputs.entries()) {
      // The app starts a session with its first message (`start`); every later one is a message.
      await drive(i === 0 ? { type: 'start', task: text } : { type: 'user', text });
      // A step left pending (a cut generation the session went on with) goes on while the record does.
      while (runtime.loopState.status === 'running' && generations.length > 0) await drive({ type: 'resume' });
    }
  } finally {
    await runtime.dispose();
  }
  if (generations.length > 0) throw diverged(`${generations.length} recorded generation(s) were never asked for`);
  if (calls.length > 0) throw diverged(`${calls.length} recorded tool call(s) were never made`);
  await syncSession(scratch, storeTarget(store), upgradedId);
  return { sessionId: upgradedId, inputs: inputs.length, steps };
}

/** Checks one replayed event against the record; counts its steps. */
function check(event: RuntimeEvent, calls: ToolCall[], results: ToolResult[]): number {
  if (event.type === 'step-failed') throw diverged(`a step failed: ${event.error.message}`);
  if (event.type === 'tool-result') {
    const recorded = results.shift();
    if (recorded && recorded.ok !== event.ok) throw diverged(`its call of ${event.tool} ${event.ok ? 'succeeds' : `fails (${event.output.slice(0, 80)})`} where the session's ${recorded.ok ? 'succeeded' : 'failed'}`);
  }
  if (event.type === 'tool-call') {
    const next = calls.shift();
    if (!next || next.tool !== event.tool || next.args !== event.args) {
      throw diverged(`it calls ${event.tool} with ${event.args.slice(0, 80)} where the session called ${next ? `${next.tool} with ${next.args.slice(0, 80)}` : 'no tool'}`);
    }
  }
  return event.type === 'checkpoint' ? 1 : 0;
}
