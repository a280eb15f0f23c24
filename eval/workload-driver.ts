/**
 * Runs one workload's agent for a number of steps with real tool components on any Engine, and checks every tool
 * call the model wrote: its JSON, its tool, its arguments against the tool's schema. The agent's own calls (adding
 * sources, checking diffs) are not the model's and are not counted. Isomorphic: components come from a loader (built
 * folders in Node, eval/run-workload.ts; files handed to a page in the browser tests), so the same driver checks
 * every engine.
 */
import { isFerryError } from '../src/core/errors.ts';
import type { Engine } from '../src/core/llm/engine.ts';
import { parseToolCalls } from '../src/core/llm/tool-calls.ts';
import type { ToolChoice } from '../src/core/llm/tool-generation.ts';
import { addUsage, agentOf, AgentLoop, checkJsonSchema, inProcessTool, instantiate, type LoadedComponent, type LoopEvent, type Sampling, type ToolHost } from '../src/core/runtime/index.ts';
import { childrenOneByOne } from '../src/core/parallel/index.ts';
import type { RunRecord } from './checks.ts';
import type { Workload } from './workloads.ts';

export interface WorkloadOptions {
  /** Steps of the parent agent to run (its children's steps run inside them). */
  readonly steps: number;
  readonly sampling?: Partial<Sampling>;
  readonly toolChoice?: ToolChoice;
}

/** A built component by its name (an agent's or a tool's, as in components/dist). */
export type ComponentLoader = (name: string) => Promise<LoadedComponent>;

export interface BadCall {
  readonly raw: string;
  readonly problem: string;
}

export interface WorkloadResult {
  readonly workload: string;
  readonly steps: number;
  /** Calls the model wrote, valid or not. */
  readonly calls: number;
  readonly valid: number;
  readonly bad: readonly BadCall[];
  readonly replies: readonly string[];
  /** Fresh conversations started because the last one outgrew the context. */
  readonly restarts: number;
  /** The workload's own checks of the answers (eval/checks.ts), by figure name. */
  readonly checks: Readonly<Record<string, number>>;
}

export async function driveWorkload(workload: Workload, engine: Engine, options: WorkloadOptions, load: ComponentLoader): Promise<WorkloadResult> {
  const agentComponent = await load(workload.agent);
  const createAgent = async () => agentOf(await instantiate(agentComponent, {}));
  const first = await createAgent();
  const tools: ToolHost[] = [];
  for (const name of first.describe().tools) tools.push(inProcessTool(await instantiate(await load(name), {})));
  await seed(tools, workload.files ?? {});
  const schemas = new Map(tools.map((t) => [t.info.name, JSON.parse(t.info.argsSchema) as unknown]));

  let calls = 0;
  let valid = 0;
  const bad: BadCall[] = [];
  const replies: string[] = [];
  const events: RunRecord['events'][number][] = [];
  const check = (text: string) => {
    const parsed = parseToolCalls(text, new Set(schemas.keys()));
    calls += parsed.calls.length + parsed.errors.length;
    for (const e of parsed.errors) bad.push({ raw: e.raw, problem: e.problem });
    for (const call of parsed.calls) {
      const problems = checkJsonSchema(schemas.get(call.name), call.arguments);
      if (problems.length === 0) valid++;
      else bad.push({ raw: JSON.stringify(call), problem: problems.join('; ') });
    }
  };
  const onEvent = (event: LoopEvent) => {
    if (event.type === 'generation') {
      check(event.text);
      events.push({ kind: 'generation', text: event.text });
    }
    if (event.type === 'reply') {
      replies.push(event.text);
      events.push({ kind: 'reply', text: event.text });
    }
  };
  const base = {
    engine,
    tools,
    slot: `eval-${workload.name}`,
    ...(options.sampling ? { sampling: options.sampling } : {}),
    ...(options.toolChoice ? { toolChoice: options.toolChoice } : {}),
    maxStepsPerRun: options.steps,
  };
  // Children run here, one after another, each a fresh agent with the same tools; their steps are the parent's.
  const runChildren = childrenOneByOne(async (usage) => new AgentLoop({ ...base, agent: await createAgent(), afterStep: async (r) => addUsage(usage, r.usage) }), (_child, event) => onEvent(event));

  let steps = 0;
  let restarts = 0;
  let loop = new AgentLoop({ ...base, agent: first, runChildren });
  let input: { type: 'start'; task: string } | { type: 'user'; text: string } = { type: 'start', task: workload.task };
  while (steps < options.steps) {
    try {
      for await (const event of loop.run(input)) {
        if (event.type === 'step') steps++;
        onEvent(event);
        if (steps >= options.steps) break;
      }
      input = { type: 'user', text: workload.followUp };
    } catch (err) {
      // A conversation that outgrew the context starts again: the calls checked so far stand.
      if (!(isFerryError(err) && (err.code === 'llm/context-overflow' || err.code === 'llm/context-full'))) throw err;
      restarts++;
      loop = new AgentLoop({ ...base, agent: await createAgent(), runChildren });
      input = { type: 'start', task: workload.task };
    }
  }
  const checks = workload.check ? await workload.check({ tools, events, seeded: workload.files ?? {} }) : {};
  return { workload: workload.name, steps, calls, valid, bad, replies, restarts, checks };
}

/** Writes the workload's files through the workspace tool, as an earlier session would have. */
async function seed(tools: readonly ToolHost[], files: Readonly<Record<string, string>>): Promise<void> {
  const workspace = tools.find((t) => t.info.name === 'workspace');
  for (const [file, content] of Object.entries(files)) {
    if (!workspace) throw new Error(`the workload seeds ${file} but its agent has no workspace tool`);
    const outcome = await workspace.invoke(JSON.stringify({ op: 'write', path: file, content }));
    if (!outcome.ok) throw new Error(`could not seed ${file}: ${outcome.output}`);
  }
}
