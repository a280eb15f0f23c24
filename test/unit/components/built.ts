/**
 * The built-in components for these tests: built into components/dist when their sources changed (or reused), then
 * loaded and instantiated the way the runtime does. Tools come wrapped as the loop calls them (inProcessTool).
 */
import path from 'node:path';
import { buildComponents } from '../../../scripts/components/build.ts';
import { loadBuiltComponent } from '../../../server/runtime/node-components.ts';
import { agentOf, inProcessTool, instantiate, resultError, toolExportsOf, type Agent, type AgentLoop, type LoadedComponent, type LoopEvent, type RunInput, type ToolHost } from '../../../src/core/runtime/index.ts';

/** A cold build takes 10–100 s per component on the 2-core build machines under load. */
export const BUILD_TIMEOUT = 900_000;

const root = path.join(import.meta.dirname, '..', '..', '..');
const loaded = new Map<string, Promise<LoadedComponent>>();

export function component(name: string): Promise<LoadedComponent> {
  let p = loaded.get(name);
  if (!p) {
    p = buildComponents({ srcDir: path.join(root, 'components'), outDir: path.join(root, 'components', 'dist'), witDir: path.join(root, 'components', 'wit'), names: [name] })
      .then(([built]) => loadBuiltComponent(built!.dir));
    loaded.set(name, p);
  }
  return p;
}

export async function tool(name: string): Promise<ToolHost> {
  return inProcessTool(await instantiate(await component(name), {}));
}

export async function agent(name: string): Promise<Agent> {
  return agentOf(await instantiate(await component(name), {}));
}

/** A fresh tool instance called directly: the parsed ok value, or throws the tool's error message as an Error. */
export async function directTool(name: string): Promise<{ call(args: unknown): unknown; raw(args: string): string }> {
  const exports = toolExportsOf(await instantiate(await component(name), {}));
  const raw = (args: string) => {
    try {
      return exports.invoke(args);
    } catch (err) {
      const message = resultError(err);
      if (message === undefined) throw err;
      throw new ToolError(message);
    }
  };
  return { raw, call: (args) => JSON.parse(raw(JSON.stringify(args))) as unknown };
}

/** The tool answered with its `err` case: a message for the model (not a crash). */
export class ToolError extends Error {}

/** The tool's error message for a call that must fail; fails the test when the call succeeds or traps. */
export function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ToolError) return err.message;
    throw err;
  }
  throw new Error('expected the tool to answer with an error');
}

/** Runs the loop on one input and collects what it streamed. */
export async function collect(loop: AgentLoop, input: RunInput): Promise<LoopEvent[]> {
  const events: LoopEvent[] = [];
  for await (const event of loop.run(input)) events.push(event);
  return events;
}

export function replies(events: readonly LoopEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'reply' ? [e.text] : []));
}

export function toolCalls(events: readonly LoopEvent[]): { tool: string; args: Record<string, unknown> }[] {
  return events.flatMap((e) => (e.type === 'tool-call' ? [{ tool: e.tool, args: JSON.parse(e.args) as Record<string, unknown> }] : []));
}
